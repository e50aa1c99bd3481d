"""How one layer's integers sit in the engine's memories (the layout both emitters share).

Weight ROM word `nf*SF + sf` holds PE x SIMD lanes; lane `p*SIMD + s` is weight
`w[nf*PE + p, sf*SIMD + s]`, packed by `codecs.pack_lanes`. Per-channel tables (bias, M, S) are
`NF` words of `PE` lanes, lane `p` for output channel `nf*PE + p`.
"""

from __future__ import annotations

import numpy as np

from vitfpga.quant.codecs import pack_lanes

__all__ = ["channel_words", "weight_words"]


def weight_words(weight: np.ndarray, pe: int, simd: int, bits: int) -> list[int]:
    n, k = weight.shape
    if n % pe or k % simd:
        raise ValueError(f"a {n}x{k} weight does not fold by PE={pe}, SIMD={simd}")
    words = []
    for nf in range(n // pe):
        for sf in range(k // simd):
            tile = weight[nf * pe:(nf + 1) * pe, sf * simd:(sf + 1) * simd]
            words.append(pack_lanes(tile.reshape(-1).tolist(), bits))
    return words


def channel_words(values: np.ndarray, pe: int, bits: int) -> list[int]:
    """Group a per-output-channel table into PE-lane words of `bits`-bit signed lanes."""
    if values.shape[0] % pe:
        raise ValueError(f"{values.shape[0]} channels do not fold by PE={pe}")
    return [pack_lanes(values[i:i + pe].tolist(), bits) for i in range(0, values.shape[0], pe)]
