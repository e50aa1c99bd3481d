"""Pruning during QAT: unstructured magnitude, N:M along K, whole attention heads, MLP neurons.

Masks live in `torch.nn.utils.parametrize`, so every forward sees `weight * mask`; Brevitas'
stats-based per-channel weight quantiser reads the tensor it is given, so scales come from the
masked weight and pruned weights quantise to integer zeros. `Pruner.finalize` bakes masks in.

Schedule: Zhu & Gupta's (2017) cubic ramp over the first `ramp` of training, then held. N:M is
one-shot at `nm_start` (NVIDIA's ASP recipe, Mishra et al. 2021): with M fixed by the hardware
the only steps between are (M-1):M..N:M (for 2:4, just 3:4), so a ramp buys little. Masks only
grow: entries pruned once rank lowest next time, so nothing regrows."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

import numpy as np
import torch
import torch.nn.functional as F
from brevitas.nn import QuantLinear
from brevitas.quant_tensor import QuantTensor
from torch import Tensor, nn
from torch.nn.utils import parametrize

from vitfpga.ir import IntLinear
from vitfpga.quant.codecs import NMSparse, nm_encode
from vitfpga.quant.model import Attention, Mlp

__all__ = ["METHODS", "PruneSpec", "Pruner", "check_nm", "head_mask", "magnitude_mask",
           "neuron_mask", "nm_mask", "shrink_structured", "sparsity_report"]

METHODS = ("magnitude", "nm", "heads", "neurons")
_EPS = 1e-9  # so that e.g. 0.3 * 10 prunes 3, not 2, despite float rounding
Prev = Tensor | None  # the previous keep-mask: what it pruned stays pruned


@dataclass(frozen=True)
class PruneSpec:
    method: str = "magnitude"
    sparsity: float = 0.5  # fraction of weights / heads / neurons removed (nm: implied by n, m)
    n: int = 2
    m: int = 4
    targets: tuple[str, ...] = ("blocks.*",)  # fnmatch patterns over module paths
    ramp: float = 2 / 3  # fraction of training over which the cubic ramp runs
    nm_start: float = 1 / 3  # fraction of training after which the N:M pattern switches on

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown pruning method {self.method!r}; use one of {METHODS}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.method == "nm" and not 1 <= self.n < self.m:
            raise ValueError(f"N:M needs 1 ≤ N < M, got {self.n}:{self.m}")
        if isinstance(self.targets, str) or not all(isinstance(t, str) for t in self.targets):
            raise ValueError(f"targets must be a tuple of path patterns, got {self.targets!r}")
        if not self.targets:
            raise ValueError("targets must name at least one module-path pattern")
        if not 0.0 < self.ramp <= 1.0 or not 0.0 <= self.nm_start < 1.0:
            raise ValueError(f"need 0 < ramp ≤ 1, 0 ≤ nm_start < 1: {self.ramp}, {self.nm_start}")

    @property
    def target(self) -> float:
        return 1.0 - self.n / self.m if self.method == "nm" else self.sparsity

    def sparsity_at(self, step: int, total: int) -> float:
        """Scheduled sparsity after `step` of `total` epochs (cubic ramp; N:M a step)."""
        step = min(max(step, 0), total)
        if self.method == "nm":
            return self.target if step >= min(total, round(self.nm_start * total)) else 0.0
        end = max(1, round(self.ramp * total))
        return self.sparsity * (1.0 - (1.0 - min(step / end, 1.0)) ** 3)

    def matches(self, path: str) -> bool:
        return any(fnmatchcase(path, t) for t in self.targets)


def _score(score: Tensor, prev: Prev) -> Tensor:
    score = score.detach().double()
    return score if prev is None else torch.where(prev.reshape(score.shape), score, -1.0)


def _prune_lowest(score: Tensor, sparsity: float, prev: Prev) -> Tensor:
    """Keep-mask over a 1-D score: drop the ⌊sparsity·n⌋ lowest (ties: lower index first), at
    least one kept; entries dropped in `prev` score lowest, so masks stay nested."""
    score = _score(score, prev).flatten()
    k = min(score.numel() - 1, int(sparsity * score.numel() + _EPS))
    keep = torch.ones(score.numel(), dtype=torch.bool)
    keep[torch.argsort(score, stable=True)[:max(k, 0)]] = False
    return keep


def magnitude_mask(weight: Tensor, sparsity: float, prev: Prev = None) -> Tensor:
    """Unstructured: prune the ⌊sparsity·numel⌋ smallest |w| of the layer."""
    return _prune_lowest(weight.abs(), sparsity, prev).view(weight.shape)


def nm_mask(weight: Tensor, n: int, m: int, prev: Prev = None) -> Tensor:
    """Keep the N largest |w| of every group of M along K (ties: lower index), as
    `codecs.nm_prune` does on integers; a short last group is padded with never-kept slots."""
    rows, k = weight.shape
    groups = F.pad(_score(weight.abs(), prev), (0, -k % m), value=-2.0).view(rows, -1, m)
    order = torch.argsort(groups, dim=2, descending=True, stable=True)
    keep = torch.zeros(groups.shape, dtype=torch.bool).scatter_(2, order[:, :, :n], True)
    return keep.view(rows, -1)[:, :k]


def head_mask(qkv: Tensor, proj: Tensor, heads: int, sparsity: float, prev: Prev = None) -> Tensor:
    """(heads,) keep-mask: rank heads by the L2 norm of their q, k, v rows and proj columns.
    q, k, v are contiguous thirds of qkv's rows; head h owns rows [h*hd, (h+1)*hd) of each."""
    dim = proj.shape[1]
    if dim % heads or qkv.shape[0] != 3 * dim:
        raise ValueError(f"qkv {tuple(qkv.shape)} / proj {tuple(proj.shape)} do not split "
                         f"into {heads} heads")
    sq = qkv.detach().double().reshape(3, heads, dim // heads, -1).pow(2).sum((0, 2, 3))
    sq += proj.detach().double().reshape(-1, heads, dim // heads).pow(2).sum((0, 2))
    return _prune_lowest(sq.sqrt(), sparsity, prev)


def neuron_mask(fc1: Tensor, fc2: Tensor, sparsity: float, prev: Prev = None) -> Tensor:
    """(hidden,) keep-mask: rank neurons by the L2 norm of their fc1 row and fc2 column."""
    sq = fc1.detach().double().pow(2).sum(1) + fc2.detach().double().pow(2).sum(0)
    return _prune_lowest(sq.sqrt(), sparsity, prev)


class _Mask(nn.Module):
    """`tensor * mask`, the mask a buffer updated in place: nothing is re-registered."""

    def __init__(self, shape: torch.Size) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones(shape))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.mask.to(x.dtype)


def _live_scale_for_dead_rows(proxy: nn.Module, args: tuple, out: object) -> object:
    """Weight-quantiser hook: a fully pruned row's AbsMax scale clamps to ~1e-12, putting export's
    requant multiplier below 2^-31; its integers are 0 at any scale, so use the largest live one."""
    if not isinstance(out, QuantTensor) or out.scale.numel() != out.value.shape[0]:
        return None
    dead = (out.value.reshape(out.value.shape[0], -1) == 0).all(dim=1)
    if not dead.any() or dead.all():
        return None
    scale = out.scale.reshape(-1)
    return out.set(scale=torch.where(dead, scale[~dead].detach().max(), scale).view_as(out.scale))


class Pruner:
    """Masks `model`'s target layers on `spec`'s schedule: `step(epoch)` after each epoch (fits
    `train(..., on_epoch=pruner.step)`), then `finalize()` before export."""

    def __init__(self, model: nn.Module, spec: PruneSpec, total_epochs: int) -> None:
        spec.validate()
        if total_epochs < 1:
            raise ValueError(f"total epochs must be ≥ 1, got {total_epochs}")
        self.model, self.spec, self.total, self.sparsity = model, spec, total_epochs, 0.0
        self._finalized = False
        self._masks: dict[str, _Mask] = {}  # "path.weight" / "path.bias" -> mask
        self._units: dict[str, Tensor] = {}  # structured: producer path -> unit keep-mask
        modules = dict(model.named_modules())
        structured = spec.method in ("heads", "neurons")
        self._groups = self._structured_groups(modules) if structured else []
        self._layers = ([p for g in self._groups for p in g[:2]] if structured else
                        [p for p, m in modules.items() if isinstance(m, nn.Linear)
                         and spec.matches(p)])
        if not self._layers:
            raise ValueError(f"{spec.method} pruning: no layer matches targets {spec.targets}")
        producers = {g[0] for g in self._groups}  # their bias too: a removed unit outputs 0
        for path in self._layers:
            module = modules[path]
            biased = path in producers and module.bias is not None
            for name in ("weight", "bias") if biased else ("weight",):
                self._masks[f"{path}.{name}"] = _Mask(getattr(module, name).shape)
                parametrize.register_parametrization(module, name, self._masks[f"{path}.{name}"])
            if isinstance(module, QuantLinear):
                module.weight_quant.register_forward_hook(_live_scale_for_dead_rows)
        self._update(0)

    def _structured_groups(self, modules: dict[str, nn.Module]) -> list[tuple[str, str, int]]:
        """(qkv, proj, heads) or (fc1, fc2, hidden) per targeted block; both slots dense."""
        kind, names = ((Attention, ("qkv", "proj")) if self.spec.method == "heads"
                       else (Mlp, ("fc1", "fc2")))
        groups = []
        for path, module in modules.items():
            slots = [f"{path}.{n}" for n in names]
            if not isinstance(module, kind) or not any(map(self.spec.matches, slots)):
                continue
            for slot in (s for s in slots if not isinstance(modules[s], nn.Linear)):
                raise ValueError(f"{self.spec.method} pruning needs dense {'/'.join(names)} "
                                 f"slots; {slot} is {type(modules[slot]).__name__}")
            units = module.heads if kind is Attention else modules[slots[0]].out_features
            groups.append((slots[0], slots[1], units))
        return groups

    def _weight(self, path: str) -> Tensor:  # unmasked: the mask is recomputed from it
        return self.model.get_submodule(path).parametrizations.weight.original

    @torch.no_grad()
    def _update(self, step: int) -> None:
        spec, s = self.spec, self.spec.sparsity_at(step, self.total)
        self.sparsity = s  # what step() reports
        for path in [] if self._groups else self._layers:
            mask, w = self._masks[f"{path}.weight"].mask, self._weight(path)
            if spec.method == "magnitude" or s > 0:
                mask.copy_(magnitude_mask(w, s, mask.bool()) if spec.method == "magnitude"
                           else nm_mask(w, spec.n, spec.m, mask.bool()))
        for producer, consumer, units in self._groups:
            a, b = self._weight(producer), self._weight(consumer)
            prev = self._units.get(producer)
            if spec.method == "heads":
                keep = head_mask(a, b, units, s, prev)
                cols = keep.repeat_interleave(b.shape[1] // units)
                rows = cols.repeat(3)  # the same heads in each of the q, k, v thirds
            else:
                keep = rows = cols = neuron_mask(a, b, s, prev)
            self._units[producer] = keep
            self._masks[f"{producer}.weight"].mask.copy_(rows[:, None].expand_as(a))
            if f"{producer}.bias" in self._masks:
                self._masks[f"{producer}.bias"].mask.copy_(rows)
            self._masks[f"{consumer}.weight"].mask.copy_(cols[None, :].expand_as(b))

    def step(self, epoch: int, loss: float | None = None) -> float:
        """Epoch `epoch` (0-based) has ended: set the masks for what follows. Returns sparsity."""
        if self._finalized:  # the parametrizations are gone
            raise RuntimeError("pruner already finalized")
        self._update(epoch + 1)
        return self.sparsity

    def masks(self) -> dict[str, np.ndarray]:
        """Keep-masks (True = kept) by parameter name, e.g. "blocks.0.mlp.fc1.weight"."""
        return {key: m.mask.bool().numpy().copy() for key, m in self._masks.items()}

    def finalize(self) -> None:
        """Bake the current masks into the weights and drop the parametrizations."""
        for key in self._masks:
            path, name = key.rsplit(".", 1)
            if parametrize.is_parametrized(module := self.model.get_submodule(path), name):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
        self._finalized = True


def sparsity_report(layers: dict[str, IntLinear]) -> dict[str, float]:
    """Fraction of exactly-zero integer weights per layer."""
    return {name: float(np.mean(layer.weight == 0)) for name, layer in layers.items()}


def check_nm(layers: dict[str, IntLinear], spec: PruneSpec) -> dict[str, NMSparse]:
    """Encode every target layer as N:M; ValueError naming the first layer that is not."""
    if spec.method != "nm":
        raise ValueError(f"check_nm needs an nm spec, got {spec.method!r}")
    out = {}
    for name, layer in ((n, v) for n, v in layers.items() if spec.matches(n)):
        try:
            out[name] = nm_encode(layer.weight, spec.n, spec.m, layer.weight_bits)
        except ValueError as err:
            raise ValueError(f"layer {name}: {err}") from None
    if not out:
        raise ValueError(f"no exported layer matches targets {spec.targets}")
    return out


def shrink_structured(layers: dict[str, IntLinear], head_dim: int) -> dict[str, IntLinear]:
    """Physically drop dead heads (qkv rows of all three thirds, proj input columns) and dead
    neurons (fc1 rows, fc2 input columns). A unit is dead only if all its producer weights AND
    biases are 0: it then outputs int 0 (requant of 0 is 0; softmax·0 and GELU(0) are 0), so
    its consumer columns never contribute. One unit per block is always kept."""
    out = dict(layers)
    for name, layer in layers.items():
        if name.endswith(".attn.qkv"):
            heads = layer.n // (3 * head_dim)
            if layer.n != 3 * heads * head_dim:
                raise ValueError(f"{name}: {layer.n} rows are not 3 x heads x {head_dim}")
            live = (layer.weight.reshape(3, heads, head_dim, -1).any(axis=(0, 2, 3))
                    | layer.bias.reshape(3, heads, head_dim).any(axis=(0, 2)))
            consumer, width = name[:-3] + "proj", head_dim
        elif name.endswith(".mlp.fc1"):
            live = layer.weight.any(axis=1) | (layer.bias != 0)
            consumer, width = name[:-3] + "fc2", 1
        else:
            continue
        if live.all():
            continue
        live[0] |= not live.any()  # never an empty block
        cols = np.repeat(live, width)
        rows = np.tile(cols, 3) if name.endswith(".qkv") else cols  # q, k, v thirds
        # A factored consumer takes its input in `u` (and the sparse term `s`).
        users = [c for c in (consumer, f"{consumer}.u", f"{consumer}.s") if c in layers]
        if not users or any(layers[c].k != cols.size for c in users):
            raise ValueError(f"{name}: no consumer {consumer} with K = {cols.size}")
        out[name] = replace(layer, weight=layer.weight[rows], bias=layer.bias[rows],
                            multiplier=layer.multiplier[rows], shift=layer.shift[rows],
                            w_scale=layer.w_scale[rows])
        for c in users:
            out[c] = replace(layers[c], weight=layers[c].weight[:, cols])
    return out
