"""Integer-only primitives for the non-linear ops of the ViT (I-BERT / I-ViT style).

The ops themselves (`rescale`, `isqrt`, `int_layernorm`, `int_softmax`, `lut_apply`,
`int_add`) live in `vitfpga.runtime.intmath`, numpy int64 only, because the same code runs on a
PYNQ board's ARM core; they are re-exported here for vitfpga's callers. What stays here are the
parameter builders (`*_params`, `gelu_lut`): they run once at calibration time, in float, and
hand back integers, so the runtime path never sees a float.

Every rescale by a real factor uses the §3 rule `(x*M + 2^(S-1)) >> S` with `(M, S)` from
`requant_params`: `requantize` where the result is int8, `rescale` (the same expression with
another clamp) where it is wider (the int16 residual stream, the softmax exponent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vitfpga.ir import requant_params
from vitfpga.runtime.intmath import (
    EXP2_FRAC_BITS,
    EXP2_LUT,
    EXP2_ONE_BITS,
    LN_FRAC_BITS,
    int_add,
    int_layernorm,
    int_softmax,
    isqrt,
    lut_apply,
    requantize,
    rescale,
    round_shift,
)

__all__ = ["EXP2_FRAC_BITS", "EXP2_LUT", "EXP2_ONE_BITS", "LN_FRAC_BITS", "LNParams",
           "add_params", "gelu_lut", "int_add", "int_layernorm", "int_softmax", "isqrt",
           "layernorm_params", "lut_apply", "requantize", "rescale", "rescale_params",
           "round_shift", "softmax_params"]

Rescale = tuple[int, int]  # (M, S) of one real multiplier


def rescale_params(real: float) -> Rescale:
    """`real ≈ M / 2^S` by the one rule's split (`requant_params`)."""
    m, s = requant_params(np.array([real]))
    return int(m[0]), int(s[0])


@dataclass(frozen=True)
class LNParams:
    """One integer LayerNorm: gamma (times sqrt(D)) and beta folded to integers at one scale,
    requantised to int8 by the one rule. `int_layernorm(x, **p.to_arrays())` applies it."""

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


def softmax_params(score_scale: float) -> Rescale:
    """(M, S) mapping `max - score` (at `score_scale`) to log2 units at 2^-8."""
    return rescale_params(score_scale * math.log2(math.e) * 2.0**EXP2_FRAC_BITS)


def gelu_lut(in_scale: float, out_scale: float, kind: str = "erf") -> np.ndarray:
    """The 256-entry ROM: `lut[q + 128] = clamp(round(gelu(q*s_in) / s_out), -128, 127)`,
    round half to even as Brevitas' input quantiser of the next layer; `kind` "erf" is the
    exact GELU, "tanh" its tanh approximation (the model's own, so the ROM matches it)."""
    q = torch.arange(-128, 128, dtype=torch.float64)
    approximate = {"erf": "none", "tanh": "tanh"}[kind]
    y = torch.nn.functional.gelu(q * in_scale, approximate=approximate) / out_scale
    return torch.round(y).clamp(-128, 127).to(torch.int8).numpy()


def add_params(in_scales: Sequence[float], out_scale: float) -> np.ndarray:
    """(terms, 2) int32 rows of (M, S) mapping each input scale to the output scale."""
    return np.array([rescale_params(s / out_scale) for s in in_scales], dtype=np.int32)
