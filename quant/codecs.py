"""Weight codecs: bit-exact Python encoders/decoders that the hardware decoders must match.

- `dense`: signed intB values packed LSB-first into one word, lane i at bits [i*B, (i+1)*B).
- `codebook`: per layer, a table of 2^k int8 values (1-D k-means over the weights) and one k-bit
  index per weight.
- `bitmap`: unstructured sparsity: one presence bit per weight, then each non-zero as a code
  for the 2^B - 2 non-zero values of the narrow range (1 bit for ternary 2-bit weights).
- `nm`: N:M structured sparsity along K: in every group of M consecutive weights of a row at most
  N are non-zero; stored as N values and N position indices (ceil(log2 M) bits) per group.

Sizes are counted in real bits, indices and tables included (`encoded_bits`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The generic lane packing lives in the runtime (numpy only, shipped in the board driver), where
# the planner and the layout read it without importing quant.
# N:M encoding is the engine's codec too, so it lives in the runtime beside the others.
from vitfpga.runtime.codecs import (
    SUPPORTED_BITS,
    NMSparse,
    narrow_range,
    nm_encode,
    pack_lanes,
    unpack_lanes,
)

__all__ = ["SUPPORTED_BITS", "Bitmap", "Codebook", "NMSparse", "bitmap_encode",
           "codebook_encode", "narrow_range", "nm_encode", "nm_prune", "nonzero_bits",
           "pack_lanes", "packed_bytes", "unpack_lanes"]


def packed_bytes(weight: np.ndarray, bits: int) -> int:
    """Bytes a dense-packed weight tensor takes, counted in real bits and rounded up."""
    return (int(weight.size) * bits + 7) // 8


@dataclass(frozen=True, eq=False)
class Codebook:
    """A layer's weights as k-bit indices into a table of int8 values."""

    table: np.ndarray  # (2^k,) int64, int8 range, sorted
    indices: np.ndarray  # (N, K) int64 in [0, 2^k)
    index_bits: int

    def decode(self) -> np.ndarray:
        return self.table[self.indices]

    @property
    def encoded_bits(self) -> int:
        return int(self.indices.size) * self.index_bits + int(self.table.size) * 8


def codebook_encode(weight: np.ndarray, index_bits: int, iterations: int = 30) -> Codebook:
    """Cluster the integer weights into 2^k int8 centroids (1-D k-means, deterministic start at
    quantiles). Exact (`decode() == weight`) whenever the weights take at most 2^k values."""
    w = np.asarray(weight, dtype=np.int64)
    if not 1 <= index_bits <= 8:
        raise ValueError(f"codebook index bits must be 1..8, got {index_bits}")
    if w.size == 0 or w.min() < -128 or w.max() > 127:
        raise ValueError("codebook weights must be non-empty int8 values")
    k = 2**index_bits
    values, counts = np.unique(w, return_counts=True)
    if values.size <= k:
        table = np.concatenate([values, np.full(k - values.size, values[-1])])
    else:
        centres = np.quantile(np.repeat(values, counts).astype(np.float64),
                              (np.arange(k) + 0.5) / k)
        for _ in range(iterations):
            nearest = np.abs(values[:, None] - centres[None, :]).argmin(axis=1)
            for c in range(k):
                members = nearest == c
                if members.any():
                    centres[c] = np.average(values[members], weights=counts[members])
        table = np.clip(np.round(centres), -128, 127).astype(np.int64)
    table = np.sort(table)
    indices = np.abs(w[..., None] - table).argmin(axis=-1).astype(np.int64)
    return Codebook(table=table, indices=indices, index_bits=index_bits)


def _check_nm(n: int, m: int) -> None:
    if not 1 <= n < m:
        raise ValueError(f"N:M sparsity needs 1 <= N < M, got {n}:{m}")


def _groups(weight: np.ndarray, m: int) -> np.ndarray:
    w = np.asarray(weight, dtype=np.int64)
    if w.ndim != 2:
        raise ValueError(f"expected a (N, K) weight matrix, got shape {w.shape}")
    pad = -w.shape[1] % m
    return np.pad(w, ((0, 0), (0, pad))).reshape(w.shape[0], -1, m)


def nm_prune(weight: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the N largest-magnitude weights of every group of M along K (ties: lower index)."""
    _check_nm(n, m)
    g = _groups(weight, m)
    order = np.argsort(-np.abs(g), axis=2, kind="stable")
    mask = np.zeros(g.shape, dtype=bool)
    np.put_along_axis(mask, order[:, :, :n], True, axis=2)
    k = np.asarray(weight).shape[1]
    return np.where(mask, g, 0).reshape(g.shape[0], -1)[:, :k]


def nonzero_bits(bits: int) -> int:
    """Bits of a code for the non-zero values of a B-bit narrow range (2·(2^(B-1)-1) of them)."""
    _, hi = narrow_range(bits)
    return max(1, math.ceil(math.log2(2 * hi)))


@dataclass(frozen=True, eq=False)
class Bitmap:
    """Sparse weights: a presence bit per weight and a code per non-zero, row-major."""

    shape: tuple[int, int]
    present: np.ndarray  # (N*K,) bool
    codes: np.ndarray  # (non-zeros,) int64 in [0, 2*hi): -hi..-1 -> 0..hi-1, 1..hi -> hi..2hi-1
    bits: int

    def decode(self) -> np.ndarray:
        _, hi = narrow_range(self.bits)
        values = np.where(self.codes < hi, self.codes - hi, self.codes - hi + 1)
        out = np.zeros(self.present.size, dtype=np.int64)
        out[self.present] = values
        return out.reshape(self.shape)

    @property
    def encoded_bits(self) -> int:
        return int(self.present.size) + int(self.codes.size) * nonzero_bits(self.bits)


def bitmap_encode(weight: np.ndarray, bits: int) -> Bitmap:
    lo, hi = narrow_range(bits)
    w = np.asarray(weight, dtype=np.int64)
    if w.ndim != 2 or w.min(initial=0) < lo or w.max(initial=0) > hi:
        raise ValueError(f"weights must be a 2-D array in the {bits}-bit narrow range")
    flat = w.reshape(-1)
    present = flat != 0
    v = flat[present]
    codes = np.where(v < 0, v + hi, v + hi - 1)
    return Bitmap(shape=(int(w.shape[0]), int(w.shape[1])), present=present, codes=codes,
                  bits=bits)
