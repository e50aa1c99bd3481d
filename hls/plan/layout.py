"""How the model's integers sit in the engine's memories (the layout both emitters share).

One weight memory holds every layer. Layer l's words start at `w_base`; its word `nf*SF + sf`
holds PE x SIMD lanes, lane `p*SIMD + s` being weight `w[nf*PE + p, sf*SIMD + s]` packed by the
layer's codec (`runtime.codecs`; `dense` packs signed lanes with `pack_lanes`). Layers whose K or
N is not a multiple of SIMD or PE are zero-padded, so every layer runs on the same PE x SIMD
array. Per-channel tables (bias, M, S) hold `NF` words of `PE` lanes per layer from `c_base`;
padded channels get bias 0, M = 2^30, S = 1 and so output 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vitfpga.errors import BadInput
from vitfpga.runtime.codecs import CHANNEL_PAD, Codec, UnknownCodec, codec_for, pack_lanes

if TYPE_CHECKING:
    from vitfpga.hls.plan.engine import LayerSlot, ModelPlan
    from vitfpga.ir import IntLinear

__all__ = ["CHANNEL_PAD", "PROGRAM_BITS", "PROGRAM_FIELDS", "ModelTables", "channel_words",
           "layer_codec", "model_tables", "pack_fields", "pad_input", "program_words",
           "unpad_output", "weight_words"]

# One program word per layer, fields LSB first: (name, bits).
PROGRAM_FIELDS = (("w_base", 32), ("c_base", 32), ("sf", 16), ("nf", 16), ("relu", 8))
PROGRAM_BITS = sum(bits for _, bits in PROGRAM_FIELDS)


def _pad_to(values: np.ndarray, axis: int, multiple: int, fill: int) -> np.ndarray:
    size = values.shape[axis]
    extra = math.ceil(size / multiple) * multiple - size
    if extra == 0:
        return values
    widths = [(0, 0)] * values.ndim
    widths[axis] = (0, extra)
    return np.pad(values, widths, constant_values=fill)


def layer_codec(layer: IntLinear, bits: int | None = None) -> Codec:
    """The codec that stores `layer` (at `bits` lanes; default its own weight bits); BadInput
    naming the layer when its codec is unknown."""
    try:
        return codec_for(layer.codec, layer.weight_bits if bits is None else bits)
    except UnknownCodec as e:
        raise BadInput(f"layer {layer.name}: {e}") from None


def weight_words(weight: np.ndarray, pe: int, simd: int, bits: int, codec: str = "dense"
                 ) -> list[int]:
    """One layer's weight words under `codec`, zero-padded to whole PE x SIMD tiles."""
    return codec_for(codec, bits).pack(weight, pe, simd)


def channel_words(values: np.ndarray, pe: int, bits: int, fill: int = 0) -> list[int]:
    """A per-output-channel table as PE-lane words of `bits`-bit lanes, padded with `fill`.

    Lanes are packed as signed values; M < 2^31 and S <= 62 fit their 32- and 8-bit lanes, so
    their hex words read back as the unsigned values."""
    v = _pad_to(np.asarray(values), 0, pe, fill)
    return [pack_lanes(v[i:i + pe].tolist(), bits) for i in range(0, v.shape[0], pe)]


def pack_fields(fields: dict[str, int]) -> int:
    """Pack one program entry by PROGRAM_FIELDS (unsigned fields, LSB first)."""
    word, offset = 0, 0
    for name, bits in PROGRAM_FIELDS:
        value = int(fields[name])
        if not 0 <= value < 2**bits:
            raise ValueError(f"program field {name}={value} does not fit {bits} bits")
        word |= value << offset
        offset += bits
    return word


def program_words(entries: list[dict[str, int]]) -> list[int]:
    return [pack_fields(e) for e in entries]


@dataclass(frozen=True)
class ModelTables:
    """Every word of the engine's memories, in address order: what both emitters write."""

    weights: list[int]  # plan.weight_depth words of plan.word_bits
    bias: list[int]  # plan.channel_depth words of PE int32 lanes
    mult: list[int]  # PE 32-bit lanes, M < 2^31
    shift: list[int]  # PE 8-bit lanes
    program: list[dict[str, int]]  # one entry per layer, fields of PROGRAM_FIELDS

    @property
    def program_words(self) -> list[int]:
        return program_words(self.program)


def model_tables(plan: ModelPlan, layers: dict[str, IntLinear]) -> ModelTables:
    """Lay every layer of the plan into the shared memories.

    Layers with fewer weight bits than the plan sit sign-extended in the plan's wider lanes (a
    narrow-range B-bit value fits any wider signed lane unchanged)."""
    weights: list[int] = []
    tables: dict[str, list[int]] = {name: [] for name in CHANNEL_PAD}
    program = []
    for slot in plan.layers:
        layer = layers[slot.name]
        words = layer_codec(layer, plan.weight_bits).pack(layer.weight, plan.pe, plan.simd)
        if slot.w_base < len(weights):  # a shared weight copy, already laid down
            if weights[slot.w_base:slot.w_base + len(words)] != words:
                raise ValueError(f"plan entry {slot.ident} shares weights it does not have")
        elif len(weights) == slot.w_base:
            weights += words
        else:
            raise ValueError(f"plan entry {slot.ident} does not start where the previous ended")
        if len(tables["bias"]) != slot.c_base:
            raise ValueError(f"plan entry {slot.ident} does not start where the previous ended")
        for name, values in (("bias", layer.bias), ("mult", layer.multiplier),
                             ("shift", layer.shift)):
            bits, fill = CHANNEL_PAD[name]
            tables[name] += channel_words(values, plan.pe, bits, fill)
        program.append({"w_base": slot.w_base, "c_base": slot.c_base, "sf": slot.sf,
                        "nf": slot.nf, "relu": int(slot.relu)})
    if len(weights) != plan.weight_depth or len(tables["bias"]) != plan.channel_depth:
        raise ValueError("the plan's memory depths do not match its layers")
    return ModelTables(weights=weights, bias=tables["bias"], mult=tables["mult"],
                       shift=tables["shift"], program=program)


def pad_input(x: np.ndarray, slot: LayerSlot, simd: int) -> np.ndarray:
    """Input rows (M, K) zero-padded to (M, SF*SIMD), the width the engine streams."""
    x = _pad_to(np.asarray(x, dtype=np.int64), 1, simd, 0)
    if x.shape[1] != slot.sf * simd:
        raise ValueError(f"{slot.ident}: input rows have {x.shape[1]} columns, expected {slot.k}")
    return x


def unpad_output(y: np.ndarray, slot: LayerSlot) -> np.ndarray:
    """Engine output rows (M, NF*PE) cut back to the layer's N channels."""
    return np.asarray(y)[:, :slot.n]
