"""Integer-only primitives for the non-linear ops of the ViT (I-BERT / I-ViT style).

Every function here computes on integer torch tensors only; its float meaning is in its
docstring. The parameter builders (`*_params`, `gelu_lut`) run once at calibration time, in
float, and hand back integers: the runtime path never sees a float.

Every rescale by a real factor uses the §3 rule `(x*M + 2^(S-1)) >> S` with `(M, S)` from
`requant_params`: `golden.requantize` where the result is int8, `rescale` (the same expression
with another clamp) where it is wider (the int16 residual stream, the softmax exponent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vitfpga.ir import requant_params
from vitfpga.quant.golden import requantize

__all__ = ["EXP2_FRAC_BITS", "EXP2_LUT", "LN_FRAC_BITS", "LNParams", "add_params", "gelu_lut",
           "int_add", "int_layernorm", "int_softmax", "isqrt", "layernorm_params", "lut_apply",
           "rescale", "rescale_params", "softmax_params"]

Rescale = tuple[int, int]  # (M, S) of one real multiplier


def rescale_params(real: float) -> Rescale:
    """`real ≈ M / 2^S` by the one rule's split (`requant_params`)."""
    m, s = requant_params(np.array([real]))
    return int(m[0]), int(s[0])


def _round_shift(x: torch.Tensor, mult: torch.Tensor | int,
                 shift: torch.Tensor | int) -> torch.Tensor:
    # Written exactly as golden.requantize, minus its int8 clamp; tests hold them equal.
    x = x.to(torch.int64)
    mult = torch.as_tensor(mult, dtype=torch.int64)
    shift = torch.as_tensor(shift, dtype=torch.int64)
    return (x * mult + (torch.ones_like(shift) << (shift - 1))) >> shift


def rescale(x: torch.Tensor, mult: torch.Tensor | int, shift: torch.Tensor | int,
            bits: int) -> torch.Tensor:
    """`clamp(round(x * M/2^S))` to signed `bits`, int64: golden.requantize for any width.
    Needs |x| < 2^32 so that `x*M` stays inside int64."""
    lim = 1 << (bits - 1)
    return _round_shift(x, mult, shift).clamp(-lim, lim - 1)


def isqrt(x: torch.Tensor) -> torch.Tensor:
    """floor(sqrt(x)) for int64 x >= 0, exact over the whole range (bitwise digit-by-digit
    method, 32 fixed steps, vectorised: no float estimate to correct, no overflow)."""
    x = x.to(torch.int64)
    if bool((x < 0).any()):
        raise ValueError("isqrt of a negative integer")
    rem, root = x.clone(), torch.zeros_like(x)
    for k in range(31, -1, -1):
        bit = 1 << (2 * k)
        trial = root + bit  # root holds the answer so far times 2^(k+1): trial < 2^63
        take = rem >= trial
        rem = torch.where(take, rem - trial, rem)
        root = torch.where(take, (root >> 1) + bit, root >> 1)
    return root


@dataclass(frozen=True)
class LNParams:
    """One integer LayerNorm: gamma (times sqrt(D)) and beta folded to integers at one scale,
    requantised to int8 by the one rule."""

    gamma: np.ndarray  # (D,) int16: gamma * sqrt(D) at scale s_g
    beta: np.ndarray  # (D,) int32 at scale s_g * 2^-LN_FRAC_BITS
    mult: int  # (M, S) of s_g * 2^-LN_FRAC_BITS / s_out
    shift: int
    eps: int  # D * eps in units of (s_in / D)^2, added to sum(xc^2)

    def to_arrays(self) -> dict[str, np.ndarray]:
        meta = np.array([self.mult, self.shift, self.eps], dtype=np.int64)
        return {"gamma": self.gamma, "beta": self.beta, "meta": meta}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LNParams:
        mult, shift, eps = (int(v) for v in arrays["meta"])
        return cls(arrays["gamma"], arrays["beta"], mult, shift, eps)


LN_FRAC_BITS = 15  # |xc| / sqrt(sum xc^2) <= 1: the normalised value is in [-2^15, 2^15]


def layernorm_params(gamma: np.ndarray, beta: np.ndarray, eps: float, in_scale: float,
                     out_scale: float) -> LNParams:
    """Integers for `int_layernorm` of a LayerNorm(gamma, beta, eps) whose input is at
    `in_scale` and whose int8 output is at `out_scale` (the next linear layer's input)."""
    d = np.asarray(gamma).size
    # int_layernorm divides by sqrt(sum xc^2) = sqrt(D) * sigma: sqrt(D) goes into gamma.
    gamma = np.asarray(gamma, dtype=np.float64) * math.sqrt(d)
    beta = np.asarray(beta, dtype=np.float64)
    # One scale for both keeps |n*gamma| <= 2^30 and |beta| < 2^30: acc fits int32.
    s_g = max(float(np.abs(gamma).max()), float(np.abs(beta).max()), 1e-12) / 32767
    g_int = np.round(gamma / s_g).astype(np.int16)
    b_int = np.round(beta * 2.0**LN_FRAC_BITS / s_g).astype(np.int32)
    mult, shift = rescale_params(s_g * 2.0**-LN_FRAC_BITS / out_scale)
    eps_int = min(round(eps * d**3 / in_scale**2), 2**61)
    return LNParams(g_int, b_int, mult, shift, eps_int)


def _norm_shift(v: torch.Tensor) -> torch.Tensor:
    """The largest k <= 31 with v * 4^k < 2^62 (a leading-zero count, halved), v >= 0."""
    k = torch.zeros_like(v)
    for step in (16, 8, 4, 2, 1):
        t = (k + step).clamp(max=31)
        k = torch.where(v < (torch.ones_like(v) << (62 - 2 * t)), t, k)
    return k


def int_layernorm(x: torch.Tensor, p: LNParams) -> torch.Tensor:
    """int8 `round(LayerNorm(x * s_in) / s_out)` over the last axis, for int16 x.

    `xc = D*x - sum(x)` is D times the centred value, exactly; `sum(xc^2) + eps` is shifted
    left by an even 2k (leading-zero normalisation) so that its integer sqrt keeps >= 30
    significant bits whatever the input's magnitude; one floor division gives
    `xc / sqrt(sum xc^2)` at 15 fraction bits; gamma and beta follow in integers and the one
    rule requantises. Needs D <= 1024 so that `sum(xc^2)` fits int64.
    """
    x = x.to(torch.int64)
    d = x.shape[-1]
    xc = d * x - x.sum(-1, keepdim=True)
    v = (xc * xc).sum(-1, keepdim=True) + p.eps
    k = _norm_shift(v)
    root = isqrt(v << (2 * k)).clamp(min=1)  # root = 0 only when every xc is 0
    # |xc| <= sqrt(v) < 2^(31-k): the shifted numerator stays below 2^47
    n = torch.div(xc << (LN_FRAC_BITS + k), root, rounding_mode="floor")
    acc = n * torch.as_tensor(p.gamma, dtype=torch.int64) + torch.as_tensor(p.beta,
                                                                          dtype=torch.int64)
    return requantize(acc, torch.tensor(p.mult), torch.tensor(p.shift))


# exp(-d) = 2^-(d*log2 e): integer part by a shift, fraction by a 256-entry ROM of 2^-j/256.
# Justification over I-BERT's 2nd-order polynomial: a ROM is as cheap in hardware, has no
# model-dependent constants (only the one rescale of the scores is), and its error is set by
# the fraction step alone: 2^(1/512) - 1 = 0.14% relative, below the polynomial's.
EXP2_FRAC_BITS = 8
EXP2_ONE_BITS = 22  # the ROM holds 2^-j/256 at scale 2^-22; a row sum fits int32 to 511 tokens
EXP2_LUT = np.round(2.0**EXP2_ONE_BITS * 2.0 ** (-np.arange(256) / 256)).astype(np.int32)
_RECIP_BITS = 40  # 2^40 // row sum: relative error <= tokens * 2^-18, negligible


def softmax_params(score_scale: float) -> Rescale:
    """(M, S) mapping `max - score` (at `score_scale`) to log2 units at 2^-8."""
    return rescale_params(score_scale * math.log2(math.e) * 2.0**EXP2_FRAC_BITS)


def int_softmax(scores: torch.Tensor, mult: int, shift: int, lut: np.ndarray = EXP2_LUT,
                prob_max: int = 127) -> torch.Tensor:
    """`round(prob_max * softmax(scores * s))` over the last axis, int64 in [0, prob_max].

    Error: |p - prob_max*softmax| <= 0.5 + prob_max * 0.3%, i.e. at most 1 for prob_max 127;
    each row sums to prob_max within tokens/2 + 1 (per-element rounding).
    """
    s = scores.to(torch.int64)
    d = (s.max(-1, keepdim=True).values - s).clamp(max=2**32 - 1)
    u = _round_shift(d, mult, shift)  # -d * log2(e), at 2^-8, >= 0
    whole = (u >> EXP2_FRAC_BITS).clamp(max=62)
    e = torch.as_tensor(lut, dtype=torch.int64)[u & ((1 << EXP2_FRAC_BITS) - 1)] >> whole
    recip = (1 << _RECIP_BITS) // e.sum(-1, keepdim=True)  # the one division per row
    return (e * recip * prob_max + (1 << (_RECIP_BITS - 1))) >> _RECIP_BITS


def gelu_lut(in_scale: float, out_scale: float) -> np.ndarray:
    """The 256-entry ROM: `lut[q + 128] = clamp(round(gelu(q*s_in) / s_out), -128, 127)`,
    round half to even as Brevitas' input quantiser of the next layer."""
    q = torch.arange(-128, 128, dtype=torch.float64)
    y = torch.nn.functional.gelu(q * in_scale) / out_scale
    return torch.round(y).clamp(-128, 127).to(torch.int8).numpy()


def lut_apply(x: torch.Tensor, lut: np.ndarray) -> torch.Tensor:
    """`lut[x + 128]` for int8 x: an exact table look-up."""
    return torch.as_tensor(lut)[x.to(torch.int64) + 128]


def add_params(in_scales: Sequence[float], out_scale: float) -> np.ndarray:
    """(terms, 2) int32 rows of (M, S) mapping each input scale to the output scale."""
    return np.array([rescale_params(s / out_scale) for s in in_scales], dtype=np.int32)


def int_add(terms: Sequence[torch.Tensor], params: np.ndarray, bits: int) -> torch.Tensor:
    """`sat(round(sum_i x_i * s_i / s_out))` to signed `bits`: each term is rescaled to the
    output scale by the one rule (error <= 1/2 LSB per term), summed exactly, saturated."""
    total = torch.zeros((), dtype=torch.int64)
    for x, (m, s) in zip(terms, params.tolist(), strict=True):
        total = total + _round_shift(x, m, s)
    lim = 1 << (bits - 1)
    return total.clamp(-lim, lim - 1)
