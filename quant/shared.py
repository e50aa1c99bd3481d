"""DeepCompress-ViT's shared-decoder encoding: every block's weight of one layer type is low-bit
codes times ONE decoder that all blocks share, `x·W_lᵀ ≈ (x·Z_l)·D_t`.

In a `Structure` slot with `shared=True`, `u.weight` is Z_lᵀ (r x K, per block) and `v.weight` is
D_tᵀ (N x r, one Parameter tied across blocks); `v.bias` is the block's own bias. `shared_init`
fits D_t and the codes to a dense teacher by SVD of the blocks' stacked weights (optionally
activation-aware). During training the codes can be computed instead of free — Z_l = E_t(W_l),
a small learned encoder per layer type applied to the block's frozen original weight — and are
materialised when the encoder is dropped, leaving the plain structure for export.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from vitfpga.quant.lowrank import Factorisation, factorise
from vitfpga.quant.model import ViT, ViTConfig, linear_shapes
from vitfpga.quant.qat import float_vit
from vitfpga.quant.structure import LAYER_TYPES, FactoredLinear, Structure, layer_type

__all__ = ["attach_encoders", "drop_encoders", "encode_stats", "layer_inputs", "shared_factorise",
           "shared_groups", "shared_init"]

ENCODERS = "shared_encoders"  # the model attribute holding the encoders while attached

ArrayLike = np.ndarray | torch.Tensor


def shared_groups(cfg: ViTConfig, structure: Structure) -> dict[str, list[str]]:
    """Layer type -> its shared slots, in block order, after checking the structure can be built
    and initialised; every problem is a one-line ValueError."""
    shapes = {name: (k, n) for name, k, n, _ in linear_shapes(cfg)}
    if set(structure) != set(shapes):
        missing, unknown = set(shapes) - set(structure), set(structure) - set(shapes)
        raise ValueError(f"structure does not match the model: missing {sorted(missing)}, "
                         f"unknown {sorted(unknown)}")
    groups: dict[str, list[str]] = {}
    for slot, spec in structure.items():
        if not spec.shared:
            continue
        kind = layer_type(slot)
        if kind is None:
            raise ValueError(f"slot {slot}: shared=True needs a block layer "
                             f"({', '.join(LAYER_TYPES)})")
        if not spec.factored:
            raise ValueError(f"slot {slot}: shared=True needs rank > 0")
        if spec.sparse:
            raise ValueError(f"slot {slot}: a shared decoder with a sparse term is not supported")
        groups.setdefault(kind, []).append(slot)
    for kind, slots in groups.items():
        # One tensor quantised by one quantiser setting: rank and decoder bits must agree.
        if len({(structure[s].rank, structure[s].decoder_bits) for s in slots}) > 1:
            raise ValueError(f"{kind}: shared slots need one rank and one decoder bit-width, got "
                             + ", ".join(f"{s} r={structure[s].rank}" for s in slots))
        (k, n), r = shapes[slots[0]], structure[slots[0]].rank
        if r > min(n, len(slots) * k):
            raise ValueError(f"{kind}: shared rank {r} is outside 1..{min(n, len(slots) * k)} "
                             f"(decoder {r}x{n} fitted to {len(slots)} blocks of {n}x{k})")
    return groups


def shared_factorise(weights: Sequence[ArrayLike], rank: int,
                     inputs: Sequence[ArrayLike] | None = None) -> Factorisation:
    """One decoder for several (N, K) weights: `b` (r, N) is D_t with orthonormal rows, `a`
    (L·K, r) the blocks' codes stacked, `spectrum` prices each rank (for `allocate_ranks` with
    shapes (L·K, N)). Activation-aware when each block's inputs (..., K) are given.

    The stacked problem is one `factorise` call: the blocks side by side, [W_1 … W_L] (N x L·K),
    fed block-diagonal inputs, compute exactly the blocks' outputs, so the SVD of the whitened
    stacked weights gives the decoder minimising the summed output error."""
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    n, k = ws[0].shape
    if any(w.shape != (n, k) for w in ws):
        raise ValueError(f"shared weights must all be {n}x{k}, got {[w.shape for w in ws]}")
    if not 1 <= rank <= min(n, len(ws) * k):
        raise ValueError(f"shared rank {rank} is outside 1..{min(n, len(ws) * k)} "
                         f"for {len(ws)} blocks of {n}x{k}")
    if inputs is None:
        return factorise(np.concatenate(ws, axis=1), rank)
    diag = np.zeros((len(ws) * k, len(ws) * k))
    for i, (w, x) in enumerate(zip(ws, inputs, strict=True)):
        x = np.asarray(x, dtype=np.float64).reshape(-1, k)
        # Scale each block to unit output energy so the sum is of *relative* errors: otherwise
        # the block with the largest activations alone would choose the shared decoder.
        x = x / max(float(np.linalg.norm(x @ w.T)), 1e-300)
        # R with RᵀR = XᵀX stands in for the rows: same Gram matrix, K rows instead of thousands.
        diag[i * k:(i + 1) * k, i * k:(i + 1) * k] = np.linalg.qr(x, mode="r")
    # The least-squares codes given D_t are W_lᵀ·D_tᵀ with or without the whitening (it is
    # invertible and the codes are free per block): awareness acts through D_t alone.
    return factorise(np.concatenate(ws, axis=1), rank, diag)


@torch.no_grad()
def layer_inputs(model: nn.Module, images: torch.Tensor, slots: Iterable[str]
                 ) -> dict[str, np.ndarray]:
    """Calibration rows for `shared_init`: each slot's input (rows, K) on `images`."""
    rows: dict[str, list[torch.Tensor]] = {s: [] for s in slots}
    hooks = [model.get_submodule(s).register_forward_pre_hook(
        lambda _, args, s=s: rows[s].append(args[0].reshape(-1, args[0].shape[-1])))
        for s in rows]
    was_training = model.training
    try:
        model.eval()
        model(images)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return {s: torch.cat(r).double().numpy() for s, r in rows.items()}


def shared_init(teacher: ViT, structure: Structure,
                calib: Mapping[str, ArrayLike] | None = None, factored: ViT | None = None) -> ViT:
    """A float ViT of `structure` initialised from the dense `teacher`: shared slots by
    `shared_factorise` per layer type (activation-aware with `calib`, slot -> input rows), dense
    slots and every non-linear parameter copied. Factored slots that are not shared come from
    `factored`, an already-factorised float model of the same structure."""
    cfg = teacher.cfg
    groups = shared_groups(cfg, structure)
    lone = [s for s, spec in structure.items() if spec.factored and not spec.shared]
    if lone and factored is None:
        raise ValueError(f"slot {lone[0]} is factored but not shared: pass `factored`, a "
                         "factorised float model of the same structure, to initialise it")
    src = teacher.state_dict()
    for slot in (s for s, spec in structure.items() if not spec.factored or spec.shared):
        if f"{slot}.weight" not in src:
            raise ValueError(f"teacher slot {slot} is not a dense linear layer")
    if calib is not None and (absent := [s for g in groups.values() for s in g if s not in calib]):
        raise ValueError(f"calib has no inputs for {absent[0]}")
    model = float_vit(cfg, structure)
    new: dict[str, torch.Tensor] = {}
    for slots in groups.values():
        ws = [src[f"{s}.weight"] for s in slots]
        fac = shared_factorise(ws, structure[slots[0]].rank,
                               None if calib is None else [calib[s] for s in slots])
        k = ws[0].shape[1]
        for i, s in enumerate(slots):
            codes = torch.from_numpy(fac.a[i * k:(i + 1) * k].T).float()  # Z_lᵀ, (r, K)
            new |= {f"{s}.u.weight": codes, f"{s}.u.bias": torch.zeros(len(codes)),
                    f"{s}.v.weight": torch.from_numpy(fac.b.T).float(),
                    f"{s}.v.bias": src[f"{s}.bias"]}
    other = factored.state_dict() if factored is not None else {}
    lone_keys = [k for k in model.state_dict() if any(k.startswith(f"{s}.") for s in lone)]
    if absent := [k for k in lone_keys if k not in other]:
        raise ValueError(f"`factored` has no {absent[0]}: it must follow the same structure")
    for key in model.state_dict():
        if key not in new:  # dense slots and non-linear parameters from the teacher
            new[key] = other[key] if key in lone_keys else src[key]
    model.load_state_dict(new)
    return model


class _Encode(nn.Module):
    """Parametrisation of one block's `u.weight`: codes Z_lᵀ = E_t applied to the rows of W_lᵀ.
    The parametrisation's `original` tensor *is* the block's dense weight W_l (N x K), which is
    what `right_inverse` hands to torch at registration, so forward(original) reads naturally."""

    def __init__(self, encoder: nn.Module, source: torch.Tensor) -> None:
        super().__init__()
        # A tuple, not a submodule: the model owns each encoder once (as `shared_encoders`), so
        # the state dict does not repeat it per block.
        self._encoder = (encoder,)
        self._source: torch.Tensor | None = source

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # Contiguous, as the materialised Parameter and a reloaded one are: same GEMM, same bits.
        return self._encoder[0](weight.t()).t().contiguous()

    def right_inverse(self, codes: torch.Tensor) -> torch.Tensor:
        if self._source is None:
            raise RuntimeError("codes come from the encoder while attached; drop_encoders first")
        source, self._source = self._source, None  # needed once, at registration
        return source


def attach_encoders(model: ViT, structure: Structure,
                    source_weights: nn.Module | Mapping[str, torch.Tensor]) -> nn.ModuleDict:
    """Make every shared slot's codes Z_l = E_t(W_l), E_t a bias-free linear N -> r per layer
    type fitted (least squares over the blocks) to reproduce the current codes — exactly so after
    `shared_init`, whose codes are D_t·W_l. W_l (from `source_weights`: the dense teacher, or
    slot -> (N, K) tensor) stays frozen: it is the encoder's input, not a parameter — trained, it
    would give each block K·N free values and make the encoder a mere reparametrisation. Works on
    float and Brevitas models alike: the weight quantiser takes its stats from `u.weight`, which
    is now the encoded tensor. The encoders live in `model.shared_encoders`, so the model's
    optimiser trains them."""
    if hasattr(model, ENCODERS):
        raise ValueError("encoders are already attached to this model")
    groups = shared_groups(model.cfg, structure)
    if not groups:
        raise ValueError("structure has no shared slots: there is nothing to encode")
    encoders = nn.ModuleDict()
    pending: list[tuple[nn.Module, nn.Module, torch.Tensor]] = []
    for kind, slots in groups.items():
        us = [model.get_submodule(f"{s}.u") for s in slots]
        if any(parametrize.is_parametrized(u, "weight") for u in us):
            raise ValueError(f"{kind}: a shared slot's u.weight is already parametrised")
        ws = [_source_weight(source_weights, s).detach().to(us[0].weight) for s in slots]
        (r, k), n = us[0].weight.shape, model.get_submodule(f"{slots[0]}.v").weight.shape[0]
        if any(tuple(w.shape) != (n, k) for w in ws):
            raise ValueError(f"{kind}: source weights must be {n}x{k}, got "
                             f"{[tuple(w.shape) for w in ws]}")
        # E·[W_1 … W_L] = [U_1 … U_L] in least squares; min-norm if the blocks are degenerate.
        w_cat = torch.cat(ws, dim=1).double().numpy()
        u_cat = torch.cat([u.weight.detach() for u in us], dim=1).double().numpy()
        enc = nn.Linear(n, r, bias=False).to(us[0].weight)
        with torch.no_grad():
            enc.weight.copy_(torch.from_numpy(np.linalg.lstsq(w_cat.T, u_cat.T, rcond=None)[0].T))
        encoders[kind] = enc
        pending += [(u, enc, w) for u, w in zip(us, ws, strict=True)]
    for u, enc, w in pending:  # only once every check has passed: no half-attached model
        parametrize.register_parametrization(u, "weight", _Encode(enc, w.clone()))
        u.parametrizations.weight.original.requires_grad_(False)
    model.add_module(ENCODERS, encoders)
    return encoders


def drop_encoders(model: ViT) -> ViT:
    """Materialise the codes into plain `u.weight` Parameters (trainable again) and remove the
    encoders: the state dict then has exactly the structure's names."""
    if not hasattr(model, ENCODERS):
        raise ValueError("no encoders are attached to this model")
    encoded = [m for m in model.modules() if parametrize.is_parametrized(m, "weight")
               and any(isinstance(p, _Encode) for p in m.parametrizations.weight)]
    for m in encoded:
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        m.weight.requires_grad_(True)
    delattr(model, ENCODERS)
    return model


def encode_stats(model: ViT, structure: Structure) -> dict[str, dict[str, int | bool]]:
    """Per shared layer type: rank, blocks sharing D_t (and whether it is really one tensor),
    weight parameters and bits of the codes and the decoder against the dense originals."""
    shapes = {name: (k, n) for name, k, n, _ in linear_shapes(model.cfg)}
    stats: dict[str, dict[str, int | bool]] = {}
    for kind, slots in shared_groups(model.cfg, structure).items():
        spec, (k, n) = structure[slots[0]], shapes[slots[0]]
        first = model.get_submodule(f"{slots[0]}.v").weight
        codes, decoder = len(slots) * k * spec.rank, n * spec.rank
        stats[kind] = {
            "rank": spec.rank, "blocks": len(slots),
            "tied": all(model.get_submodule(f"{s}.v").weight is first for s in slots),
            "code_params": codes, "decoder_params": decoder, "dense_params": len(slots) * n * k,
            "code_bits": spec.bits, "decoder_bits": spec.decoder_bits,
            "weight_bits": codes * spec.bits + decoder * spec.decoder_bits,
            "dense_fp32_bits": 32 * len(slots) * n * k,
        }
    return stats


def _source_weight(source: nn.Module | Mapping[str, torch.Tensor], slot: str) -> torch.Tensor:
    if isinstance(source, nn.Module):
        layer = source.get_submodule(slot)
        if isinstance(layer, FactoredLinear) or not isinstance(layer, nn.Linear):
            raise ValueError(f"source slot {slot} is not a dense linear layer")
        return layer.weight
    if slot not in source:
        raise ValueError(f"source_weights has no weight for {slot}")
    return torch.as_tensor(source[slot])
