"""How the model's integers sit in the engine's memories (the layout both emitters share).

One weight memory holds every layer. Layer l's words start at `w_base` and hold its encoded
weight stream (`runtime.codecs`): R x SIMD lanes of `plan.lane_bits` bits (R = `plan.rows`, PE
times the row groups), lane `p*SIMD + s` carrying that lane's elements iteration after
iteration (with one element width throughout, word `f*SF + sf` lane `p*SIMD + s` is simply
weight `w[f*R + p, sf*SIMD + s]`). Layers whose K or N is not a multiple of the fold are
zero-padded, so every layer runs on the same array. Per-channel tables (bias, M, S) hold `nf`
words of `PE` lanes per layer from `c_base`, one per output beat; padded channels get bias 0,
M = 2^30, S = 1 and so output 0. With a codebook decoder, one table word per program entry
holds the layer's 2^K int8 values (entry 0 first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vitfpga.hls.plan.decoders import layer_codec
from vitfpga.runtime.codecs import CHANNEL_PAD, codec_for, pack_lanes, stream_words

if TYPE_CHECKING:
    from vitfpga.hls.plan.engine import LayerSlot, ModelPlan
    from vitfpga.ir import IntLinear

__all__ = ["CHANNEL_PAD", "PROGRAM_BITS", "PROGRAM_FIELDS", "ModelTables", "channel_words",
           "model_tables", "pack_fields", "pad_input", "program_entry", "program_words",
           "unpad_output", "weight_words"]

# One program word per layer, fields LSB first: (name, bits). `nf` counts weight folds (of
# PE x groups channels). `relu` holds flags (bit0 ReLU; the whole-model top adds bit1 streamed
# operand, bit2 raw output; bits 7:4 are a row's last-fold beats minus one, LAST_BEATS_SHIFT,
# with row groups); `codec` is
# runtime.codecs.CODEC_KINDS, `ebits` the element bits a lane reads per iteration, `wbits` the
# layer's weight bits.
PROGRAM_FIELDS = (("w_base", 32), ("c_base", 32), ("sf", 16), ("nf", 16), ("relu", 8),
                  ("codec", 8), ("ebits", 8), ("wbits", 8))
PROGRAM_BITS = sum(bits for _, bits in PROGRAM_FIELDS)
LAST_BEATS_SHIFT = 4


def _pad_to(values: np.ndarray, axis: int, multiple: int, fill: int) -> np.ndarray:
    size = values.shape[axis]
    extra = math.ceil(size / multiple) * multiple - size
    if extra == 0:
        return values
    widths = [(0, 0)] * values.ndim
    widths[axis] = (0, extra)
    return np.pad(values, widths, constant_values=fill)


def weight_words(layer: IntLinear, pe: int, simd: int, lane_bits: int) -> list[int]:
    """One layer's encoded weight stream as weight-memory words of PE x SIMD x lane_bits."""
    codec = layer_codec(layer)
    return stream_words(codec.elements(layer.weight, pe, simd), codec.element_bits, lane_bits)


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
    codebook: list[int]  # one word per entry of 2^K int8 lanes (codebook decoders only)

    @property
    def program_words(self) -> list[int]:
        return program_words(self.program)


def model_tables(plan: ModelPlan, layers: dict[str, IntLinear],
                 pairs: bool = False) -> ModelTables:
    """Lay every layer of the plan into the shared memories, each weight stream in its own
    codec (`runtime.codecs`). With `pairs` (vitfpga_mvu.v PAIR) the engine multiplies w + 1
    by x + 128 and takes off the inputs' sum itself, so the bias table holds
    bias - 128 * sum_k w[n][k] (vitfpga_mulpack.v vitfpga_mul2x2)."""
    weights: list[int] = []
    tables: dict[str, list[int]] = {name: [] for name in CHANNEL_PAD}
    program, codebook = [], []
    for slot in plan.layers:
        layer = layers[slot.name]
        codec = layer_codec(layer)
        words = stream_words(codec.elements(layer.weight, plan.rows, plan.simd),
                             codec.element_bits, plan.lane_bits)
        if slot.w_base < len(weights):  # a shared weight copy, already laid down
            if weights[slot.w_base:slot.w_base + len(words)] != words:
                raise ValueError(f"plan entry {slot.ident} shares weights it does not have")
        elif len(weights) == slot.w_base:
            weights += words
        else:
            raise ValueError(f"plan entry {slot.ident} does not start where the previous ended")
        if len(tables["bias"]) != slot.c_base:
            raise ValueError(f"plan entry {slot.ident} does not start where the previous ended")
        bias = np.asarray(layer.bias, dtype=np.int64)
        if pairs:
            bias = bias - 128 * np.asarray(layer.weight, dtype=np.int64).sum(axis=1)
        for name, values in (("bias", bias), ("mult", layer.multiplier),
                             ("shift", layer.shift)):
            bits, fill = CHANNEL_PAD[name]
            tables[name] += channel_words(values, plan.pe, bits, fill)
        program.append(program_entry(slot, plan.groups))
        if plan.codebook_bits:
            values = codec.table(layer.weight)
            codebook.append(pack_lanes(values + [0] * ((1 << plan.codebook_bits) - len(values)),
                                       8))
    if len(weights) != plan.weight_depth or len(tables["bias"]) != plan.channel_depth:
        raise ValueError("the plan's memory depths do not match its layers")
    return ModelTables(weights=weights, bias=tables["bias"], mult=tables["mult"],
                       shift=tables["shift"], program=program, codebook=codebook)


def program_entry(slot: LayerSlot, groups: int) -> dict[str, int]:
    """The program entry that runs `slot` on an engine of `groups` row groups."""
    flags = int(slot.relu) | (slot.last_beats(groups) - 1) << LAST_BEATS_SHIFT
    return {"w_base": slot.w_base, "c_base": slot.c_base, "sf": slot.sf, "nf": slot.folds,
            "relu": flags,
            "codec": codec_for(slot.codec, slot.bits).kind, "ebits": slot.ebits,
            "wbits": slot.bits}


def pad_input(x: np.ndarray, slot: LayerSlot, simd: int) -> np.ndarray:
    """Input rows (M, K) zero-padded to (M, beats*SIMD), the width the engine streams."""
    x = _pad_to(np.asarray(x, dtype=np.int64), 1, slot.beats * simd, 0)
    if x.shape[1] != slot.beats * simd:
        raise ValueError(f"{slot.ident}: input rows have {x.shape[1]} columns, expected {slot.k}")
    return x


def unpad_output(y: np.ndarray, slot: LayerSlot) -> np.ndarray:
    """Engine output rows (M, NF*PE) cut back to the layer's N channels."""
    return np.asarray(y)[:, :slot.n]
