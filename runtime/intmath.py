"""Integer-only arithmetic of the golden model, numpy int64 only (design.md §3).

This is the one Python implementation of the rounding rule and of the non-linear integer ops
(LayerNorm, softmax, GELU look-up, residual add): vitfpga's golden calls it on the host, and the
generated PYNQ driver carries a verbatim copy of this package to a board's ARM core, which has
numpy but no torch. Hence numpy and the standard library only, relative imports only, and
Python 3.8 syntax.

Every function takes array-likes (a CPU torch tensor works through `np.asarray`) and computes in
int64. numpy's `>>` on signed int64 is an arithmetic shift and `//` floors, as the hardware and
the contract assume. int64 products wrap silently; each function states the bound that keeps
its products inside int64, and the builders in `vitfpga.quant.intops` keep parameters within it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["EXP2_FRAC_BITS", "EXP2_LUT", "EXP2_ONE_BITS", "LN_FRAC_BITS", "RECIP_BITS",
           "int_add", "int_layernorm", "int_matmul", "int_mean", "int_softmax", "isqrt",
           "lut_apply", "requantize", "rescale", "round_shift"]

# exp(-d) = 2^-(d*log2 e): integer part by a shift, fraction by a 256-entry ROM of 2^-j/256.
# Justification over I-BERT's 2nd-order polynomial: a ROM is as cheap in hardware, has no
# model-dependent constants (only the one rescale of the scores is), and its error is set by
# the fraction step alone: 2^(1/512) - 1 = 0.14% relative, below the polynomial's.
# A model file stores the ROM it was calibrated with (`softmax.exp2_lut`); the forward pass
# reads that copy, so a libm that rounds one entry differently cannot change a saved model.
EXP2_FRAC_BITS = 8
EXP2_ONE_BITS = 22  # the ROM holds 2^-j/256 at scale 2^-22; a row sum fits int32 to 511 tokens
EXP2_LUT = np.round(2.0**EXP2_ONE_BITS * 2.0 ** (-np.arange(256) / 256)).astype(np.int32)
RECIP_BITS = 40  # 2^40 // row sum: relative error <= tokens * 2^-18, negligible
LN_FRAC_BITS = 15  # |xc| / sqrt(sum xc^2) <= 1: the normalised value is in [-2^15, 2^15]

_ONE = np.int64(1)
_F64_EXACT = 2**53  # every integer of smaller magnitude is a float64


def _i64(x: object) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def round_shift(x: object, mult: object, shift: object) -> np.ndarray:
    """`(x*M + 2^(S-1)) >> S` in int64, broadcasting: the one rule before any clamp.

    Needs |x| < 2^32 for M < 2^31 so that `x*M` stays inside int64."""
    x, mult, shift = _i64(x), _i64(mult), _i64(shift)
    return np.asarray((x * mult + (_ONE << (shift - 1))) >> shift)


def requantize(acc: object, mult: object, shift: object, relu: bool = False) -> np.ndarray:
    """`clamp((acc*M + 2^(S-1)) >> S, -128, 127)` in int64, per output channel (last axis);
    ReLU is the clamp at 0. The §3 rule every engine output goes through."""
    return np.asarray(np.clip(round_shift(acc, mult, shift), 0 if relu else -128, 127))


def rescale(x: object, mult: object, shift: object, bits: int) -> np.ndarray:
    """`clamp(round(x * M/2^S))` to signed `bits`, int64: `requantize` for any width (the int16
    residual stream, the softmax exponent). Needs |x| < 2^32 so that `x*M` stays in int64."""
    lim = 1 << (bits - 1)
    return np.asarray(np.clip(round_shift(x, mult, shift), -lim, lim - 1))


def _absmax(a: np.ndarray) -> int:
    return max(int(a.max()), -int(a.min()))


def int_matmul(a: object, b: object) -> np.ndarray:
    """`a @ b` of integer arrays, exact, int64 (numpy matmul broadcasting).

    numpy has no BLAS for integers and its integer matmul loop is several times slower than
    float64 BLAS (on an ARM core too), so the product runs in float64 whenever that is provably
    exact: with K * max|a| * max|b| < 2^53 every product and every partial sum, in whatever
    order BLAS adds them, is an integer below 2^53, which float64 holds exactly. Otherwise (never
    for int8 operands) it falls back to the int64 loop, which wraps like the torch code did."""
    a, b = _i64(a), _i64(b)
    if a.size and b.size and a.shape[-1] * _absmax(a) * _absmax(b) < _F64_EXACT:
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)
    return np.matmul(a, b)


def isqrt(x: object) -> np.ndarray:
    """floor(sqrt(x)) for int64 x >= 0, exact over the whole range (bitwise digit-by-digit
    method, 32 fixed steps, vectorised: no float estimate to correct, no overflow)."""
    x = _i64(x)
    if bool((x < 0).any()):
        raise ValueError("isqrt of a negative integer")
    rem, root = x.copy(), np.zeros_like(x)
    for k in range(31, -1, -1):
        bit = np.int64(1 << (2 * k))
        trial = root + bit  # root holds the answer so far times 2^(k+1): trial < 2^63
        take = rem >= trial
        rem = np.where(take, rem - trial, rem)
        root = np.where(take, (root >> 1) + bit, root >> 1)
    return np.asarray(root)


def _norm_shift(v: np.ndarray) -> np.ndarray:
    """The largest k <= 31 with v * 4^k < 2^62 (a leading-zero count, halved), v >= 0."""
    k = np.zeros_like(v)
    for step in (16, 8, 4, 2, 1):
        t = np.minimum(k + step, 31)
        k = np.where(v < (_ONE << (62 - 2 * t)), t, k)
    return k


def int_layernorm(x: object, gamma: object, beta: object, meta: object) -> np.ndarray:
    """int8 values (int64) of `round(LayerNorm(x * s_in) / s_out)` over the last axis, for int16
    x. `gamma`, `beta`, `meta = [M, S, eps]` are the arrays `LNParams.to_arrays()` stores.

    `xc = D*x - sum(x)` is D times the centred value, exactly; `sum(xc^2) + eps` is shifted
    left by an even 2k (leading-zero normalisation) so that its integer sqrt keeps >= 30
    significant bits whatever the input's magnitude; one floor division gives
    `xc / sqrt(sum xc^2)` at 15 fraction bits; gamma and beta follow in integers and the one
    rule requantises. Needs D <= 1024 so that `sum(xc^2)` fits int64.
    """
    x = _i64(x)
    mult, shift, eps = (int(v) for v in _i64(meta).tolist())
    d = x.shape[-1]
    xc = d * x - x.sum(axis=-1, keepdims=True)
    v = (xc * xc).sum(axis=-1, keepdims=True) + np.int64(eps)
    k = _norm_shift(v)
    root = np.maximum(isqrt(v << (2 * k)), 1)  # root = 0 only when every xc is 0
    # |xc| <= sqrt(v) < 2^(31-k): the scaled numerator stays below 2^47. A product by 2^n
    # rather than `<<`: the same value, and defined in C for negative xc too.
    n = (xc * (_ONE << (LN_FRAC_BITS + k))) // root
    acc = n * _i64(gamma) + _i64(beta)
    return requantize(acc, mult, shift)


def int_softmax(scores: object, mult: int, shift: int, lut: object = EXP2_LUT,
                prob_max: int = 127) -> np.ndarray:
    """`round(prob_max * softmax(scores * s))` over the last axis, int64 in [0, prob_max].

    Error: |p - prob_max*softmax| <= 0.5 + prob_max * 0.3%, i.e. at most 1 for prob_max 127;
    each row sums to prob_max within tokens/2 + 1 (per-element rounding).
    """
    s = _i64(scores)
    d = np.minimum(s.max(axis=-1, keepdims=True) - s, 2**32 - 1)
    u = round_shift(d, mult, shift)  # -d * log2(e), at 2^-8, >= 0
    whole = np.minimum(u >> EXP2_FRAC_BITS, 62)
    e = _i64(lut)[u & ((1 << EXP2_FRAC_BITS) - 1)] >> whole
    recip = (_ONE << RECIP_BITS) // e.sum(axis=-1, keepdims=True)  # the one division per row
    # e <= 2^22 and recip <= 2^18 (the row maximum contributes 2^22): below 2^48 with prob_max
    return (e * recip * prob_max + (_ONE << (RECIP_BITS - 1))) >> RECIP_BITS


def lut_apply(x: object, lut: object) -> np.ndarray:
    """`lut[x + 128]` for int8 x, as int64: an exact table look-up (the GELU ROM)."""
    return _i64(lut)[_i64(x) + 128]


def int_mean(x: object, axis: int) -> np.ndarray:
    """The mean over `axis`, rounded half up: `floor((2*sum + n) / (2n))`, exact in int64 (the
    average pooling of a class-token-free ViT; the result stays at the input's scale)."""
    v = _i64(x)
    n = v.shape[axis]
    return np.floor_divide(2 * v.sum(axis=axis) + n, 2 * n)


def int_add(terms: Sequence[object], params: object, bits: int) -> np.ndarray:
    """`sat(round(sum_i x_i * s_i / s_out))` to signed `bits`, int64, broadcasting: each term
    is rescaled to the output scale by the one rule (error <= 1/2 LSB per term), summed
    exactly, saturated. `params` holds one (M, S) row per term (`add_params`)."""
    rows = np.asarray(params).reshape(-1, 2).tolist()
    terms = list(terms)
    if len(terms) != len(rows):
        raise ValueError(f"int_add: {len(terms)} terms but {len(rows)} (M, S) rows")
    total = np.zeros((), dtype=np.int64)
    for i, x in enumerate(terms):
        m, s = rows[i]
        total = total + round_shift(x, m, s)
    lim = 1 << (bits - 1)
    return np.asarray(np.clip(total, -lim, lim - 1))
