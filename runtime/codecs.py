"""How the engine's weight memory stores a layer: the codec seam between the planner, the memory
layout and (later) the hardware decoders, plus the lane packing every memory image uses.

A codec answers, for one layer of K inputs and N outputs on a PE x SIMD array: how many bits a
lane holds, how many words and bits the layer takes, and the words themselves. Only `dense`
exists today (signed intB lanes, lane `p*SIMD + s` of word `nf*SF + sf` holding weight
`w[nf*PE + p, sf*SIMD + s]`, K and N zero-padded to whole folds); sparse or table codecs plug in
here without the planner or the layout changing.

Relocatable like the rest of `runtime`: numpy, the standard library and relative imports only,
Python 3.8 syntax, so the board driver ships it verbatim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["CHANNEL_PAD", "CODECS", "SUPPORTED_BITS", "Codec", "DenseCodec", "UnknownCodec",
           "codec_for", "narrow_range", "pack_lanes", "unpack_lanes"]

SUPPORTED_BITS = (2, 3, 4, 8)

# Per-channel table lane widths and the value a padded channel gets: bias 0, M = 2^30, S = 1
# make a padded channel output 0. The planner, the layout and the size report share them.
CHANNEL_PAD: dict[str, tuple[int, int]] = {"bias": (32, 0), "mult": (32, 2**30),
                                           "shift": (8, 1)}


class UnknownCodec(ValueError):
    """A layer names a codec this runtime has no encoder for."""


def narrow_range(bits: int) -> tuple[int, int]:
    """The signed narrow range of a B-bit weight: [-(2^(B-1)-1), 2^(B-1)-1]."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"weight bit-width {bits} is not supported; use one of {SUPPORTED_BITS}")
    hi = 2 ** (bits - 1) - 1
    return -hi, hi


def pack_lanes(values: Sequence[int], bits: int) -> int:
    """Pack signed values into one unsigned word, lane 0 in the least significant bits."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    mask = (1 << bits) - 1
    word = 0
    for lane, v in enumerate(values):
        v = int(v)
        if not lo <= v <= hi:
            raise ValueError(f"value {v} does not fit a signed {bits}-bit lane")
        word |= (v & mask) << (lane * bits)
    return word


def unpack_lanes(word: int, bits: int, lanes: int) -> list[int]:
    """Inverse of `pack_lanes`: sign-extend each lane."""
    if word < 0 or word >> (bits * lanes):
        raise ValueError(f"word does not fit {lanes} lanes of {bits} bits")
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    out = []
    for lane in range(lanes):
        v = (word >> (lane * bits)) & mask
        out.append(v - (1 << bits) if v & sign else v)
    return out


def _pad_to(values: np.ndarray, axis: int, multiple: int) -> np.ndarray:
    extra = -values.shape[axis] % multiple
    if extra == 0:
        return values
    widths = [(0, 0)] * values.ndim
    widths[axis] = (0, extra)
    return np.pad(values, widths)


class Codec:
    """One way of storing a layer's integer weights in the engine's weight memory."""

    name = ""

    def __init__(self, bits: int) -> None:
        self.bits = bits

    @property
    def lane_bits(self) -> int:
        """Bits of one weight lane of a memory word (a word is PE x SIMD lanes)."""
        raise NotImplementedError

    def words(self, k: int, n: int, pe: int, simd: int) -> int:
        """Weight-memory words one K x N layer takes on a PE x SIMD array."""
        raise NotImplementedError

    def stored_bits(self, k: int, n: int, pe: int, simd: int) -> int:
        """Bits the layer occupies in the weight memory, padding included."""
        return self.words(k, n, pe, simd) * pe * simd * self.lane_bits

    def pack(self, weight: np.ndarray, pe: int, simd: int) -> list[int]:
        """The layer's (N, K) weights as weight-memory words, in address order."""
        raise NotImplementedError


class DenseCodec(Codec):
    """Signed intB lanes, K and N zero-padded to whole SIMD and PE folds."""

    name = "dense"

    @property
    def lane_bits(self) -> int:
        return self.bits

    def words(self, k: int, n: int, pe: int, simd: int) -> int:
        return math.ceil(n / pe) * math.ceil(k / simd)

    def pack(self, weight: np.ndarray, pe: int, simd: int) -> list[int]:
        w = _pad_to(_pad_to(np.asarray(weight), 0, pe), 1, simd)
        n, k = w.shape
        words = []
        for nf in range(n // pe):
            for sf in range(k // simd):
                tile = w[nf * pe:(nf + 1) * pe, sf * simd:(sf + 1) * simd]
                words.append(pack_lanes(tile.reshape(-1).tolist(), self.bits))
        return words


CODECS = {DenseCodec.name: DenseCodec}


def codec_for(name: str, bits: int) -> Codec:
    """The codec `name` at `bits` weight bits; UnknownCodec (a ValueError) for other names."""
    if name not in CODECS:
        raise UnknownCodec(f"unknown weight codec {name!r}; known codecs: {', '.join(CODECS)}")
    return CODECS[name](bits)
