"""How the engine's weight memory stores a layer: the codecs, the encoded weight streams both
emitters lay down, and the lane packing every memory image uses (docs/engine.md, "Weight
streams").

The engine runs a layer of K inputs and N outputs as NF x SF iterations on a PE x SIMD array
(iteration `nf*SF + sf`, lane `p*SIMD + s`). Each lane needs one *element* per iteration, E bits
wide, that its decoder turns into a weight (and, for N:M, the activation it multiplies):

- `dense` (intB): the weight itself, E = B. Lane (p, s) holds `w[nf*PE + p, sf*SIMD + s]`.
- `nm:N:M` (intB, N of every M consecutive weights along K kept): an iteration covers a window
  of R*SIMD inputs (R = M/N), SIMD/N groups of M; lane (p, s) holds the (s mod N)-th kept weight
  of group s div N and its position in the group, element = position | value << P
  (P = ceil(log2 M) bits). Only kept weights are multiplied: SF is K/(R*SIMD), R times fewer
  iterations than dense at the same lanes (compute skipping).
- `codebook:k`: a k-bit index into a per-layer table of 2^k values of the layer's range, E = k.
- `ternary` (int2 only: the narrow range is {-1, 0, 1}): three iterations' weights of a lane in
  one 5-bit element, t0 + 3*t1 + 9*t2 with t = w + 1 (3^3 = 27 <= 32): 5/3 bits a weight
  instead of 2, at a fixed rate. An element covers `group` = 3 iterations.

Lane i's elements, iteration after iteration, form one bit stream, least significant bit first;
weight-memory word j of the layer holds bits [j*W, (j+1)*W) of every lane's stream, lane i at
word bits [i*W, (i+1)*W), where W (`lane_bits`) is the widest E of the design. So a layer takes
ceil(NF*SF*E / W) words: narrow layers are packed, not padded to the widest lane, and an element
may straddle two words (the decoder keeps the previous word for that). With one width
throughout this is the plain dense layout: word `nf*SF + sf`, lane i holding one weight.

Relocatable like the rest of `runtime`: numpy, the standard library and relative imports only,
Python 3.8 syntax, so the board driver ships it verbatim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "CHANNEL_PAD",
    "CODEC_KINDS",
    "NM_PATTERNS",
    "SUPPORTED_BITS",
    "CodebookCodec",
    "Codec",
    "DenseCodec",
    "NMCodec",
    "NMSparse",
    "TernaryCodec",
    "UnknownCodec",
    "choose_codecs",
    "codec_for",
    "decode_stream",
    "narrow_range",
    "nm_encode",
    "pack_lanes",
    "stream_words",
    "unpack_lanes",
]

SUPPORTED_BITS = (2, 3, 4, 8)
# N:M patterns the hardware decoder runs: M/N must be a power of two (the input window).
NM_PATTERNS = ((1, 4), (2, 4), (1, 2))
# Program-entry codes of the decoders (vitfpga_mvu.v, mvu.h).
CODEC_KINDS = {"dense": 0, "nm": 1, "codebook": 2, "ternary": 3}
MAX_CODEBOOK_BITS = 4

# Per-channel table lane widths and the value a padded channel gets: bias 0, M = 2^30, S = 1
# make a padded channel output 0. The planner, the layout and the size report share them.
CHANNEL_PAD: dict[str, tuple[int, int]] = {"bias": (32, 0), "mult": (32, 2**30),
                                           "shift": (8, 1)}


class UnknownCodec(ValueError):
    """A layer names a codec this runtime has no encoder for, or weights it cannot encode."""


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


def _tiles(w: np.ndarray, pe: int, width: int) -> np.ndarray:
    """(N, K') -> (NF*SF, PE, width): the tiles of iteration nf*SF + sf, K' a multiple of
    width and N padded to whole PE folds."""
    w = _pad_to(_pad_to(w, 0, pe), 1, width)
    n, k = w.shape
    t = w.reshape(n // pe, pe, k // width, width).transpose(0, 2, 1, 3)
    return t.reshape(-1, pe, width)


class NMSparse:
    """N:M sparse rows: per group of M along K, N values and their positions in the group."""

    def __init__(self, n: int, m: int, k: int, values: np.ndarray, positions: np.ndarray,
                 value_bits: int) -> None:
        self.n, self.m, self.k, self.value_bits = n, m, k, value_bits
        self.values = values  # (rows, groups, N) int64
        self.positions = positions  # (rows, groups, N) int64 in [0, M), increasing

    @property
    def pos_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.m)))

    def decode(self) -> np.ndarray:
        rows, groups, _ = self.values.shape
        dense = np.zeros((rows, groups, self.m), dtype=np.int64)
        np.put_along_axis(dense, self.positions, self.values, axis=2)
        return dense.reshape(rows, groups * self.m)[:, :self.k]

    @property
    def encoded_bits(self) -> int:
        return int(self.values.size) * (self.value_bits + self.pos_bits)


def _groups(weight: np.ndarray, m: int) -> np.ndarray:
    w = np.asarray(weight, dtype=np.int64)
    if w.ndim != 2:
        raise ValueError(f"expected a (N, K) weight matrix, got shape {w.shape}")
    return _pad_to(w, 1, m).reshape(w.shape[0], -1, m)


def nm_encode(weight: np.ndarray, n: int, m: int, value_bits: int) -> NMSparse:
    """Encode weights that already satisfy N:M along K (K padded with zeros to whole groups);
    exact round trip. ValueError when a group holds more than N non-zeros."""
    if not 1 <= n < m:
        raise ValueError(f"N:M sparsity needs 1 <= N < M, got {n}:{m}")
    g = _groups(weight, m)
    if np.any(np.count_nonzero(g, axis=2) > n):
        raise ValueError(f"weights are not {n}:{m} sparse; prune them first (nm_prune)")
    # The N kept slots of a group: its non-zeros first, then zeros, each in position order.
    order = np.argsort(g == 0, axis=2, kind="stable")[:, :, :n]
    positions = np.sort(order, axis=2)
    values = np.take_along_axis(g, positions, axis=2)
    return NMSparse(n, m, int(np.asarray(weight).shape[1]), values, positions, value_bits)


class Codec:
    """One way of storing a layer's integer weights in the engine's weight memory."""

    family = ""
    ratio = 1  # inputs per lane per iteration (R)
    group = 1  # iterations one element covers

    def __init__(self, bits: int) -> None:
        narrow_range(bits)
        self.bits = bits

    @property
    def name(self) -> str:
        return self.family

    @property
    def kind(self) -> int:
        return CODEC_KINDS[self.family]

    @property
    def element_bits(self) -> int:
        """Bits of one lane's element per iteration (E)."""
        raise NotImplementedError

    def folds(self, k: int, n: int, pe: int, simd: int) -> tuple[int, int]:
        """(SF, NF): iterations along K and N."""
        return math.ceil(k / (self.ratio * simd)), math.ceil(n / pe)

    def stream_elements(self, k: int, n: int, pe: int, simd: int) -> int:
        """Elements in each lane's stream: one per `group` iterations."""
        sf, nf = self.folds(k, n, pe, simd)
        return math.ceil(sf * nf / self.group)

    def words(self, k: int, n: int, pe: int, simd: int, lane_bits: int) -> int:
        """Weight-memory words the layer's stream takes at `lane_bits` bits a lane."""
        return math.ceil(self.stream_elements(k, n, pe, simd) * self.element_bits / lane_bits)

    def folding_error(self, simd: int) -> str | None:
        """Why this codec cannot run on SIMD lanes, or None."""
        return None

    def check(self, weight: np.ndarray) -> None:
        """UnknownCodec when `weight` has no exact encoding under this codec."""

    def counted_bits(self, weight: np.ndarray) -> int:
        """The encoding's own size in bits, no folding padding: what the size report counts."""
        raise NotImplementedError

    def table(self, weight: np.ndarray) -> list[int]:
        """The per-layer decode table (codebook values), [] for codecs without one."""
        return []

    def elements(self, weight: np.ndarray, pe: int, simd: int) -> np.ndarray:
        """(stream elements, PE*SIMD) unsigned E-bit elements, in stream order."""
        raise NotImplementedError

    def decode(self, elements: np.ndarray, table: Sequence[int], k: int, n: int, pe: int,
               simd: int) -> np.ndarray:
        """Inverse of `elements`: the (N, K) weights (the hardware decoder's model)."""
        raise NotImplementedError


def _signed(u: np.ndarray, bits: int) -> np.ndarray:
    u = np.asarray(u, dtype=np.int64) & ((1 << bits) - 1)
    return np.where(u >> (bits - 1) & 1, u - (1 << bits), u)


def _untile(t: np.ndarray, k: int, n: int, pe: int, width: int) -> np.ndarray:
    nf = math.ceil(n / pe)
    sf = t.shape[0] // nf
    w = t.reshape(nf, sf, pe, width).transpose(0, 2, 1, 3).reshape(nf * pe, sf * width)
    return w[:n, :k]


class DenseCodec(Codec):
    """Signed intB weights, one a lane, K and N zero-padded to whole SIMD and PE folds."""

    family = "dense"

    @property
    def element_bits(self) -> int:
        return self.bits

    def counted_bits(self, weight: np.ndarray) -> int:
        return int(np.asarray(weight).size) * self.bits

    def elements(self, weight: np.ndarray, pe: int, simd: int) -> np.ndarray:
        t = _tiles(np.asarray(weight, dtype=np.int64), pe, simd)
        return t.reshape(t.shape[0], -1) & ((1 << self.bits) - 1)

    def decode(self, elements: np.ndarray, table: Sequence[int], k: int, n: int, pe: int,
               simd: int) -> np.ndarray:
        t = _signed(elements, self.bits).reshape(-1, pe, simd)
        return _untile(t, k, n, pe, simd)


class NMCodec(Codec):
    """N:M structured sparsity along K: N kept values and their positions per group of M."""

    family = "nm"

    def __init__(self, bits: int, n: int, m: int) -> None:
        super().__init__(bits)
        if (n, m) not in NM_PATTERNS:
            raise UnknownCodec(f"N:M pattern {n}:{m} has no hardware decoder; use one of "
                               f"{', '.join(f'{a}:{b}' for a, b in NM_PATTERNS)}")
        self.n, self.m = n, m
        self.ratio = m // n
        self.pos_bits = max(1, math.ceil(math.log2(m)))

    @property
    def name(self) -> str:
        return f"nm:{self.n}:{self.m}"

    @property
    def element_bits(self) -> int:
        return self.bits + self.pos_bits

    def folding_error(self, simd: int) -> str | None:
        if simd % self.n:
            return f"{self.name} needs SIMD a multiple of {self.n}"
        return None

    def _encode(self, weight: np.ndarray) -> NMSparse:
        try:
            return nm_encode(weight, self.n, self.m, self.bits)
        except ValueError as e:
            raise UnknownCodec(str(e)) from None

    def check(self, weight: np.ndarray) -> None:
        self._encode(weight)

    def counted_bits(self, weight: np.ndarray) -> int:
        return self._encode(weight).encoded_bits

    def elements(self, weight: np.ndarray, pe: int, simd: int) -> np.ndarray:
        enc = self._encode(weight)
        # (N, G, n) -> (N, G*n): lane s of iteration sf holds kept column sf*SIMD + s, that is
        # slot s mod n of group sf*SIMD/n + s div n (SIMD is a multiple of n).
        vals = _tiles(enc.values.reshape(enc.values.shape[0], -1), pe, simd)
        pos = _tiles(enc.positions.reshape(enc.positions.shape[0], -1), pe, simd)
        e = pos | ((vals & ((1 << self.bits) - 1)) << self.pos_bits)
        return e.reshape(e.shape[0], -1)

    def decode(self, elements: np.ndarray, table: Sequence[int], k: int, n: int, pe: int,
               simd: int) -> np.ndarray:
        e = np.asarray(elements, dtype=np.int64).reshape(-1, pe, simd)
        pos = e & ((1 << self.pos_bits) - 1)
        vals = _signed(e >> self.pos_bits, self.bits)
        groups = _untile(vals, 10**9, n, pe, simd)  # (N, G*n) kept values, all columns
        places = _untile(pos, 10**9, n, pe, simd)
        rows, kept = groups.shape
        dense = np.zeros((rows, kept // self.n, self.m), dtype=np.int64)
        np.put_along_axis(dense, places.reshape(rows, -1, self.n),
                          groups.reshape(rows, -1, self.n), axis=2)
        return dense.reshape(rows, -1)[:, :k]


def _values(weight: np.ndarray) -> np.ndarray:
    """A layer's distinct weights and 0, sorted: its codebook."""
    return np.union1d(np.unique(np.asarray(weight, dtype=np.int64)), [0])


class CodebookCodec(Codec):
    """k-bit indices into a per-layer table of 2^k values: the layer's distinct weights and 0
    (zero padding to whole folds must decode to 0, so padded channels output 0)."""

    family = "codebook"

    def __init__(self, bits: int, index_bits: int) -> None:
        super().__init__(bits)
        if not 1 <= index_bits <= MAX_CODEBOOK_BITS:
            raise UnknownCodec(f"codebook index bits must be 1..{MAX_CODEBOOK_BITS}, got "
                               f"{index_bits}")
        self.index_bits = index_bits

    @property
    def name(self) -> str:
        return f"codebook:{self.index_bits}"

    @property
    def element_bits(self) -> int:
        return self.index_bits

    def table(self, weight: np.ndarray) -> list[int]:
        values = _values(weight)
        size = 1 << self.index_bits
        if values.size > size:
            raise UnknownCodec(f"{values.size} distinct weights do not fit a {size}-entry "
                               f"codebook; use codebook:{math.ceil(math.log2(values.size))}")
        return [int(v) for v in values] + [0] * (size - values.size)

    def check(self, weight: np.ndarray) -> None:
        self.table(weight)

    def counted_bits(self, weight: np.ndarray) -> int:
        return int(np.asarray(weight).size) * self.index_bits + (1 << self.index_bits) * 8

    def elements(self, weight: np.ndarray, pe: int, simd: int) -> np.ndarray:
        w = np.asarray(weight, dtype=np.int64)
        self.check(w)
        values = _values(w)
        zero = int(np.searchsorted(values, 0))
        # Padding to whole folds holds index `zero` (value 0), not index 0.
        t = _tiles(np.searchsorted(values, w) - zero, pe, simd) + zero
        return t.reshape(t.shape[0], -1)

    def decode(self, elements: np.ndarray, table: Sequence[int], k: int, n: int, pe: int,
               simd: int) -> np.ndarray:
        t = np.asarray(table, dtype=np.int64)[np.asarray(elements).reshape(-1, pe, simd)]
        return _untile(t, k, n, pe, simd)


class TernaryCodec(Codec):
    """int2 weights, three iterations of a lane in one 5-bit element (base 3)."""

    family = "ternary"
    group = 3

    def __init__(self, bits: int) -> None:
        super().__init__(bits)
        if bits != 2:
            raise UnknownCodec(f"ternary packs int2 weights (-1, 0, 1), not int{bits}")

    @property
    def element_bits(self) -> int:
        return 5

    def counted_bits(self, weight: np.ndarray) -> int:
        return math.ceil(int(np.asarray(weight).size) * 5 / 3)

    def elements(self, weight: np.ndarray, pe: int, simd: int) -> np.ndarray:
        t = _tiles(np.asarray(weight, dtype=np.int64), pe, simd).reshape(-1, pe * simd) + 1
        t = np.pad(t, ((0, -t.shape[0] % 3), (0, 0)), constant_values=1)  # padding: weight 0
        t = t.reshape(-1, 3, pe * simd)
        return t[:, 0] + 3 * t[:, 1] + 9 * t[:, 2]

    def decode(self, elements: np.ndarray, table: Sequence[int], k: int, n: int, pe: int,
               simd: int) -> np.ndarray:
        e = np.asarray(elements, dtype=np.int64)
        t = np.stack([e % 3, e // 3 % 3, e // 9], axis=1).reshape(-1, pe * simd) - 1
        sf, nf = self.folds(k, n, pe, simd)
        return _untile(t[:sf * nf].reshape(-1, pe, simd), k, n, pe, simd)


CODECS = {"dense": DenseCodec, "nm": NMCodec, "codebook": CodebookCodec,
          "ternary": TernaryCodec}


def codec_for(name: str, bits: int) -> Codec:
    """The codec `name` ("dense", "nm:N:M", "codebook:K") at `bits` weight bits; UnknownCodec
    (a ValueError) for other names."""
    family, _, args = str(name).partition(":")
    if family == "bitmap":
        raise UnknownCodec("bitmap weights have no hardware decoder yet; store sparse weights "
                           "as nm:N:M, or dense")
    if family not in CODECS:
        raise UnknownCodec(f"unknown weight codec {name!r}; known codecs: dense, nm:N:M, "
                           f"codebook:K, ternary")
    try:
        numbers = [int(a) for a in args.split(":")] if args else []
    except ValueError:
        raise UnknownCodec(f"weight codec {name!r} has a non-integer parameter") from None
    arity = {"dense": 0, "nm": 2, "codebook": 1, "ternary": 0}[family]
    if len(numbers) != arity:
        raise UnknownCodec(f"weight codec {name!r} takes {arity} parameter(s): dense, nm:N:M, "
                           f"codebook:K or ternary")
    return CODECS[family](bits, *numbers)


def stream_words(elements: np.ndarray, element_bits: int, lane_bits: int) -> list[int]:
    """Pack (iterations, lanes) E-bit elements into weight-memory words of lanes x lane_bits:
    lane i's elements form one LSB-first bit stream, word j holds its bits [j*W, (j+1)*W) at
    word bits [i*W, (i+1)*W)."""
    e = np.asarray(elements, dtype=np.int64)
    iters, lanes = e.shape
    if element_bits > lane_bits:
        raise ValueError(f"{element_bits}-bit elements do not fit {lane_bits}-bit lanes")
    bits = (e[:, :, None] >> np.arange(element_bits)) & 1  # (iters, lanes, E)
    stream = bits.transpose(1, 0, 2).reshape(lanes, -1)  # (lanes, iters*E)
    words = math.ceil(iters * element_bits / lane_bits)
    stream = np.pad(stream, ((0, 0), (0, words * lane_bits - stream.shape[1])))
    per_word = stream.reshape(lanes, words, lane_bits).transpose(1, 0, 2).reshape(words, -1)
    packed = np.packbits(per_word.astype(np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def decode_stream(words: Sequence[int], iterations: int, lanes: int, element_bits: int,
                  lane_bits: int) -> np.ndarray:
    """Inverse of `stream_words`: the (iterations, lanes) elements, read the way the hardware
    reads them (an element at stream bit it*E of its lane, maybe across two words)."""
    nbytes = math.ceil(lanes * lane_bits / 8)
    raw = np.frombuffer(b"".join(int(w).to_bytes(nbytes, "little") for w in words),
                        dtype=np.uint8).reshape(len(words), nbytes)
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, :lanes * lane_bits]
    stream = bits.reshape(len(words), lanes, lane_bits).transpose(1, 0, 2).reshape(lanes, -1)
    take = stream[:, :iterations * element_bits].reshape(lanes, iterations, element_bits)
    return (take.astype(np.int64) << np.arange(element_bits)).sum(axis=2).T


def _nm_cost(weight: np.ndarray, bits: int, pattern: tuple[int, int]) -> int | None:
    try:
        return NMCodec(bits, *pattern).counted_bits(weight)
    except UnknownCodec:
        return None


def _best(weight: np.ndarray, bits: int, pattern: tuple[int, int] | None) -> tuple[str, int]:
    """(codec, counted bits) of the cheapest exact encoding of one layer."""
    w = np.asarray(weight, dtype=np.int64)
    options = [("dense", DenseCodec(bits).counted_bits(w))]
    if bits == 2:
        options.append(("ternary", TernaryCodec(bits).counted_bits(w)))
    distinct = int(_values(w).size)
    index_bits = max(1, math.ceil(math.log2(distinct)))
    if index_bits < bits and index_bits <= MAX_CODEBOOK_BITS:
        cb = CodebookCodec(bits, index_bits)
        options.append((cb.name, cb.counted_bits(w)))
    if pattern is not None:
        cost = _nm_cost(w, bits, pattern)
        if cost is not None:
            options.append((f"nm:{pattern[0]}:{pattern[1]}", cost))
    return min(options, key=lambda o: o[1])


def choose_codecs(weights: dict[str, tuple[np.ndarray, int]]) -> dict[str, str]:
    """Each layer's cheapest exact hardware codec, by counted bits. One N:M pattern per model
    (the engine's input window is built for one): the pattern that saves the most wins."""
    best_total, best = None, {}
    for pattern in (None, *NM_PATTERNS):
        choice = {name: _best(w, bits, pattern) for name, (w, bits) in weights.items()}
        total = sum(bits for _, bits in choice.values())
        if best_total is None or total < best_total:
            best_total, best = total, {name: c for name, (c, _) in choice.items()}
    return best
