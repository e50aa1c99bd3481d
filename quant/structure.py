"""What each linear layer of the ViT becomes: dense, low-rank `(x·U)·V`, low-rank plus a sparse
term, or codes times a decoder shared by every block (DeepCompress-ViT).

A *slot* is one linear layer of `linear_shapes` ("blocks.0.mlp.fc1"). A `Structure` maps every
slot to a `SlotSpec`; the same structure builds the float model and its Brevitas twin, so their
parameter names match and the QAT student loads the float weights directly. Factored slots hold
submodules `u` (K -> r), `v` (r -> N) and optionally `s` (K -> N, sparse); export names the
integer layers `SLOT.u`, `SLOT.v`, `SLOT.s`, which the engine runs as separate program entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from vitfpga.quant.model import ViTConfig, linear_shapes

__all__ = ["LAYER_TYPES", "FactoredLinear", "SlotSpec", "Structure", "dense_structure",
           "layer_rows", "layer_type", "slot_factory", "tie_shared_decoders"]

LAYER_TYPES = ("qkv", "proj", "fc1", "fc2")

# A dense layer factory that also takes the weight bits: (in, out, name, bits) -> module.
BitsLinearFactory = Callable[[int, int, str, int], nn.Module]


@dataclass(frozen=True)
class SlotSpec:
    bits: int = 8  # weight bits of the dense layer, or of U (the codes) when factored
    rank: int = 0  # 0: dense; r > 0: (x·U)·V with U (K x r), V (r x N)
    v_bits: int = 0  # weight bits of V (the decoder); 0: same as `bits`
    sparse: bool = False  # sum of two tensors: (x·U)·V + x·S with S sparse (needs rank > 0)
    shared: bool = False  # V tied across all blocks of this layer type (needs rank > 0)

    @property
    def factored(self) -> bool:
        return self.rank > 0

    @property
    def decoder_bits(self) -> int:
        return self.v_bits or self.bits

    def to_dict(self) -> dict[str, int | bool]:
        return asdict(self)


Structure = dict[str, SlotSpec]


def layer_type(slot: str) -> str | None:
    """"qkv", "proj", "fc1" or "fc2" for a block layer; None for patch_embed and head."""
    last = slot.rsplit(".", 1)[-1]
    return last if slot.startswith("blocks.") and last in LAYER_TYPES else None


def dense_structure(cfg: ViTConfig, bits: int) -> Structure:
    return {name: SlotSpec(bits=bits) for name, _, _, _ in linear_shapes(cfg)}


def layer_rows(cfg: ViTConfig, names: list[str]) -> dict[str, int]:
    """Rows per image of every integer layer: a factored slot's `.u`, `.v` and `.s` layers see
    the rows of their slot. Raises ValueError on a layer that belongs to no slot."""
    rows = {name: r for name, _, _, r in linear_shapes(cfg)}
    out = {}
    for name in names:
        slot = name if name in rows else name.rpartition(".")[0]
        if slot not in rows or (slot != name and name.rpartition(".")[2] not in ("u", "v", "s")):
            raise ValueError(f"layer '{name}' is not a linear layer of this model")
        out[name] = rows[slot]
    return out


class FactoredLinear(nn.Module):
    """`y = v(u(x)) [+ s(x)]`: two (or three) linear layers standing in for one. With quantised
    submodules the tensor between u and v is int8, exactly what the engine computes."""

    def __init__(self, u: nn.Module, v: nn.Module, s: nn.Module | None = None) -> None:
        super().__init__()
        self.u, self.v, self.s = u, v, s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.v(self.u(x))
        return y if self.s is None else y + self.s(x)


def slot_factory(structure: Structure, dense: BitsLinearFactory
                 ) -> Callable[[int, int, str], nn.Module]:
    """The `ViT` linear factory for a structure: each slot becomes a dense layer or a
    `FactoredLinear` built from `dense`. U keeps a bias too (r int32 values): every engine
    program entry has one, and uniform layers keep export simple."""

    def make(k: int, n: int, name: str) -> nn.Module:
        spec = structure[name]
        if not spec.factored:
            return dense(k, n, name, spec.bits)
        u = dense(k, spec.rank, f"{name}.u", spec.bits)
        v = dense(spec.rank, n, f"{name}.v", spec.decoder_bits)
        s = dense(k, n, f"{name}.s", spec.bits) if spec.sparse else None
        return FactoredLinear(u, v, s)

    return make


def tie_shared_decoders(model: nn.Module, structure: Structure) -> dict[str, list[str]]:
    """Make every block's `v.weight` of a shared layer type the same parameter (the first
    block's). Returns, per layer type, the slots that share it. Weight stats-based quantisers
    read the tensor they are given, so one tied parameter quantises identically everywhere."""
    groups: dict[str, list[str]] = {}
    for slot, spec in structure.items():
        if spec.shared and (kind := layer_type(slot)) is not None:
            groups.setdefault(kind, []).append(slot)
    for slots in groups.values():
        first = model.get_submodule(f"{slots[0]}.v")
        for slot in slots[1:]:
            model.get_submodule(f"{slot}.v").weight = first.weight
    return groups
