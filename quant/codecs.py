"""Weight codecs: bit-exact Python encoders/decoders that the hardware decoders must match.

`dense`: signed intB values packed LSB-first into one word, lane i at bits [i*B, (i+1)*B).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["narrow_range", "pack_lanes", "packed_bytes", "unpack_lanes"]

SUPPORTED_BITS = (2, 3, 4, 8)


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


def packed_bytes(weight: np.ndarray, bits: int) -> int:
    """Bytes a dense-packed weight tensor takes, counted in real bits and rounded up."""
    return (int(weight.size) * bits + 7) // 8
