"""Low-rank compression of a trained float ViT: calibration inputs per slot, a mixed-rank
structure under a parameter budget, and the factorised float model built from the teacher.

The result is an ordinary `float_vit(cfg, structure)`, so `quant_vit(cfg, model, structure)` takes
it as the starting point of QAT exactly as it takes the dense teacher. Shared decoders
(`SlotSpec.shared`) are fitted elsewhere: here they are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from vitfpga.quant.lowrank import (
    Factorisation,
    allocate_ranks,
    compensate,
    factorise,
    factorise_plus_sparse,
)
from vitfpga.quant.model import ViT, ViTConfig, linear_shapes
from vitfpga.quant.qat import float_vit
from vitfpga.quant.structure import SlotSpec, Structure, layer_type

__all__ = ["ROW_CAP", "block_slots", "calibration_inputs", "factorise_model", "layer_spectra",
           "output_errors", "rank_structure", "uniform_rank_structure"]

ROW_CAP = 4096  # calibration rows kept per slot: the Gram matrix settles long before this


def block_slots(cfg: ViTConfig) -> list[str]:
    """The transformer blocks' linear layers, in execution order (patch_embed and head are small
    and sensitive, so they are usually left dense)."""
    return [name for name, _, _, _ in linear_shapes(cfg) if layer_type(name) is not None]


@torch.no_grad()
def calibration_inputs(model: nn.Module, images: torch.Tensor, slots: Iterable[str],
                       cap: int = ROW_CAP, seed: int = 0, batch: int = 256
                       ) -> dict[str, np.ndarray]:
    """Each slot's input rows (rows x K, float32) over `images`. More than `cap` rows are
    subsampled with a generator seeded by `seed` and the row count only, so the same images
    through another model of the same config give the same rows (compensation pairs them)."""
    slots = list(slots)
    rows: dict[str, list[torch.Tensor]] = {slot: [] for slot in slots}

    def hook(slot: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        return lambda _module, args: rows[slot].append(args[0].reshape(-1, args[0].shape[-1]))

    handles = [model.get_submodule(slot).register_forward_pre_hook(hook(slot)) for slot in slots]
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(images), batch):
            model(images[i:i + batch])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    out = {}
    for slot, parts in rows.items():
        x = torch.cat(parts).float().numpy()
        if len(x) > cap:
            x = x[np.sort(np.random.default_rng(seed).choice(len(x), cap, replace=False))]
        out[slot] = x
    return out


def _weight(model: nn.Module, slot: str) -> np.ndarray:
    return model.get_submodule(slot).weight.detach().double().numpy()


def layer_spectra(teacher: ViT, calib: dict[str, np.ndarray], aware: bool = True
                  ) -> dict[str, np.ndarray]:
    """Per slot, the singular values that price each rank, scaled to unit norm: their squares
    sum to the layer's whole output energy, so the allocation trades *relative* output error
    and a layer with large activations does not take the budget only for being loud."""
    out = {}
    for slot, x in calib.items():
        sigma = factorise(_weight(teacher, slot), 1, x if aware else None).spectrum
        out[slot] = sigma / max(float(np.linalg.norm(sigma)), 1e-300)
    return out


def _shapes(cfg: ViTConfig, slots: Iterable[str]) -> dict[str, tuple[int, int]]:
    known = {name: (k, n) for name, k, n, _ in linear_shapes(cfg)}
    missing = [slot for slot in slots if slot not in known]
    if missing:
        raise ValueError(f"{', '.join(missing)}: not a linear layer of this ViT")
    return {slot: known[slot] for slot in slots}


def _check_keep(keep: float) -> None:
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep {keep} is outside (0, 1]: it is the fraction of the factored "
                         "slots' dense parameters to keep")


def _saves(shape: tuple[int, int], rank: int) -> bool:
    """Whether rank-`rank` factors store fewer weights than the dense (K, N) layer."""
    return rank * (shape[0] + shape[1]) < shape[0] * shape[1]


def _with_ranks(base: Structure, ranks: dict[str, int]) -> Structure:
    return {slot: dataclasses.replace(spec, rank=ranks.get(slot, spec.rank))
            for slot, spec in base.items()}


def rank_structure(cfg: ViTConfig, base: Structure, keep: float,
                   spectra: dict[str, np.ndarray]) -> Structure:
    """`base` with a mixed rank on every slot of `spectra`, chosen by `allocate_ranks` within
    `keep` x those slots' dense parameters. A slot whose rank would cost at least its dense
    weights (r·(K+N) >= K·N) goes dense, and what it frees is reallocated to the others."""
    _check_keep(keep)
    shapes = _shapes(cfg, spectra)
    budget = int(keep * sum(k * n for k, n in shapes.values()))
    pool, dense = set(spectra), set()
    while True:
        left = budget - sum(k * n for k, n in (shapes[s] for s in dense))
        ranks = allocate_ranks({s: spectra[s] for s in spectra if s in pool},
                               {s: shapes[s] for s in pool}, left)
        wasteful = {s for s, r in ranks.items() if not _saves(shapes[s], r)}
        if not wasteful:
            return _with_ranks(base, ranks | dict.fromkeys(dense, 0))
        # A wasteful slot held at least K·N, so turning it dense never overdraws the budget.
        pool -= wasteful
        dense |= wasteful


def uniform_rank_structure(cfg: ViTConfig, base: Structure, keep: float,
                           slots: Iterable[str]) -> Structure:
    """The comparison point: every slot at the same fraction f of min(K, N) (at least rank 1),
    f as large as the same budget as `rank_structure` allows; wasteful slots go dense."""
    _check_keep(keep)
    shapes = _shapes(cfg, list(slots))
    budget = int(keep * sum(k * n for k, n in shapes.values()))

    def ranks_at(f: float) -> dict[str, int]:
        return {s: max(1, int(f * min(kn) + 1e-9)) for s, kn in shapes.items()}

    def cost(ranks: dict[str, int]) -> int:
        return sum(min(r * sum(shapes[s]), shapes[s][0] * shapes[s][1]) for s, r in ranks.items())

    fractions = sorted({r / min(kn) for kn in shapes.values() for r in range(1, min(kn) + 1)})
    best = ranks_at(0.0)
    if cost(best) > budget:
        raise ValueError(f"rank 1 everywhere already needs {cost(best)} parameters, "
                         f"budget is {budget}")
    for f in fractions:  # cost only grows with f
        if cost(ranks_at(f)) > budget:
            break
        best = ranks_at(f)
    return _with_ranks(base, {s: r if _saves(shapes[s], r) else 0 for s, r in best.items()})


def _check_structure(structure: Structure, calib: dict[str, np.ndarray], density: float) -> None:
    for slot, spec in structure.items():
        if spec.shared:
            raise ValueError(f"{slot} shares its decoder across blocks; factorise_model fits "
                             "per-slot factors only")
        if spec.factored and slot not in calib:
            raise ValueError(f"{slot} is factored but has no calibration inputs")
    if density and not any(spec.sparse for spec in structure.values()):
        raise ValueError(f"density {density} given but no slot of the structure is sparse")


def _fit_slot(weight: np.ndarray, spec: SlotSpec, x: np.ndarray, aware: bool, density: float
              ) -> tuple[Factorisation, np.ndarray | None]:
    if spec.sparse:
        return factorise_plus_sparse(weight, spec.rank, density, x if aware else None)
    return factorise(weight, spec.rank, x if aware else None), None


@torch.no_grad()
def _load_factors(model: ViT, slot: str, fact: Factorisation, sparse: np.ndarray | None,
                  bias: torch.Tensor) -> None:
    """torch keeps weights as (out, in): u.weight = Aᵀ (r, K), v.weight = Bᵀ (N, r). The bias
    stays on v, the layer's real output; u and s get zero biases."""
    layer = model.get_submodule(slot)
    as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
    layer.u.weight.copy_(as_t(fact.a.T))
    layer.u.bias.zero_()
    layer.v.weight.copy_(as_t(fact.b.T))
    layer.v.bias.copy_(bias)
    if layer.s is not None:
        layer.s.weight.copy_(as_t(sparse if sparse is not None else np.zeros(layer.s.weight.shape)))
        layer.s.bias.zero_()


def factorise_model(teacher: ViT, structure: Structure, calib: dict[str, np.ndarray],
                    aware: bool = True, compensate_steps: int = 0, density: float = 0.0, *,
                    images: torch.Tensor | None = None, quantised: bool = False,
                    lr: float = 0.01, seed: int = 0) -> ViT:
    """`float_vit(cfg, structure)` with the teacher's weights: dense slots and every other
    parameter (LayerNorms, cls_token, pos_embed) copied, factored slots fitted on `calib`
    (activation-aware, or plain SVD with `aware=False`; plus a sparse term of `density` on sparse
    slots). `compensate_steps` > 0 then tunes each slot's factors by gradient (`compensate`),
    through the structure's weight quantisers when `quantised`. Given the `images` that `calib`
    came from (same `seed`), it does so sequentially: each slot sees the inputs of the model
    compressed so far and also corrects the error arriving from the slots before it."""
    _check_structure(structure, calib, density)
    model = float_vit(teacher.cfg, structure)
    own, theirs = model.state_dict(), teacher.state_dict()
    # Same names and shapes: everything but the factored slots' u/v/s (which are new names).
    model.load_state_dict({k: theirs[k] for k in own if k in theirs}, strict=False)
    sequential = compensate_steps > 0 and images is not None
    for slot in (name for name, _, _, _ in linear_shapes(teacher.cfg)):
        spec = structure[slot]
        if not spec.factored:
            continue
        weight, x = _weight(teacher, slot), calib[slot]
        fact, sparse = _fit_slot(weight, spec, x, aware, density)
        if compensate_steps > 0:
            x_in = None
            if sequential:
                x_in = calibration_inputs(model, images, [slot], cap=len(x), seed=seed)[slot]
            bits = (spec.bits, spec.decoder_bits) if quantised else None
            fact = compensate(weight, fact, x, compensate_steps, lr, bits, x_in=x_in,
                              sparse=sparse)
        _load_factors(model, slot, fact, sparse, teacher.get_submodule(slot).bias.detach())
    return model.eval()


@torch.no_grad()
def output_errors(teacher: ViT, model: nn.Module, calib: dict[str, np.ndarray]
                  ) -> dict[str, float]:
    """Per slot, the relative error of the model's layer output against the teacher's on the
    teacher's calibration inputs: ||T(x) - M(x)|| / ||T(x) - b||, the bias left out of the
    denominator so it matches `lowrank.output_error` for an unchanged bias."""
    out = {}
    for slot, x in calib.items():
        ref_layer = teacher.get_submodule(slot)
        xt = torch.as_tensor(x, dtype=torch.float32)
        ref = ref_layer(xt)
        diff = ref - model.get_submodule(slot)(xt)
        out[slot] = float(diff.norm() / (ref - ref_layer.bias).norm().clamp_min(1e-30))
    return out
