"""How the model's integers sit in the engine's memories (the layout both emitters share).

One weight memory holds every layer. Layer l's words start at `w_base`; its word `nf*SF + sf`
holds PE x SIMD lanes, lane `p*SIMD + s` being weight `w[nf*PE + p, sf*SIMD + s]` packed by
`codecs.pack_lanes`. Layers whose K or N is not a multiple of SIMD or PE are zero-padded, so every
layer runs on the same PE x SIMD array. Per-channel tables (bias, M, S) hold `NF` words of `PE`
lanes per layer from `c_base`; padded channels get bias 0, M = 2^30, S = 1 and so output 0.
"""

from __future__ import annotations

import math

import numpy as np

from vitfpga.quant.codecs import pack_lanes

__all__ = ["CHANNEL_PAD", "PROGRAM_FIELDS", "channel_words", "pack_fields", "program_words",
           "weight_words"]

# Per-channel table lane widths and the value a padded channel gets.
CHANNEL_PAD = {"bias": (32, 0), "mult": (32, 2**30), "shift": (8, 1)}

# One program word per layer, fields LSB first: (name, bits).
PROGRAM_FIELDS = (("w_base", 32), ("c_base", 32), ("sf", 16), ("nf", 16), ("relu", 8))


def _pad_to(values: np.ndarray, axis: int, multiple: int, fill: int) -> np.ndarray:
    size = values.shape[axis]
    extra = math.ceil(size / multiple) * multiple - size
    if extra == 0:
        return values
    widths = [(0, 0)] * values.ndim
    widths[axis] = (0, extra)
    return np.pad(values, widths, constant_values=fill)


def weight_words(weight: np.ndarray, pe: int, simd: int, bits: int) -> list[int]:
    """One layer's weight words, zero-padded to whole PE x SIMD tiles."""
    w = _pad_to(_pad_to(np.asarray(weight), 0, pe, 0), 1, simd, 0)
    n, k = w.shape
    words = []
    for nf in range(n // pe):
        for sf in range(k // simd):
            tile = w[nf * pe:(nf + 1) * pe, sf * simd:(sf + 1) * simd]
            words.append(pack_lanes(tile.reshape(-1).tolist(), bits))
    return words


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
