"""The integer model: plain data shared by export, golden, planner and emitters (design.md §3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IntLinear", "requant_params", "weight_owners"]

ACC_LIMIT = 2**31


@dataclass(frozen=True, eq=False)
class IntLinear:
    """One linear layer in the integer contract.

    `acc = bias + x @ weight.T` in int32, then `y = clamp((acc*M + 2^(S-1)) >> S, -128, 127)`
    per output channel, optional ReLU as a clamp at 0.
    """

    name: str  # module path in the model, e.g. "blocks.0.mlp.fc1"
    weight: np.ndarray  # (N, K) int64, narrow range of `weight_bits`
    bias: np.ndarray  # (N,) int64, fits int32, at scale in_scale * w_scale[n]
    multiplier: np.ndarray  # (N,) int64 in [2^30, 2^31)
    shift: np.ndarray  # (N,) int64 in [1, 62]
    weight_bits: int
    in_scale: float
    w_scale: np.ndarray  # (N,) float64
    out_scale: float
    relu: bool = False

    @property
    def k(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n(self) -> int:
        return int(self.weight.shape[0])

    def acc_bound(self, x_max: int = 128) -> int:
        """Largest |acc| any int8 input can produce: the planner's overflow proof uses it."""
        per_row = np.abs(self.weight).sum(axis=1) * x_max + np.abs(self.bias)
        return int(per_row.max())

    def to_npz(self) -> dict[str, np.ndarray]:
        return {
            "weight": self.weight, "bias": self.bias, "multiplier": self.multiplier,
            "shift": self.shift, "w_scale": self.w_scale,
            "meta": np.array([self.weight_bits, self.in_scale, self.out_scale, float(self.relu)]),
        }

    @classmethod
    def from_npz(cls, name: str, arrays: dict[str, np.ndarray]) -> IntLinear:
        bits, in_scale, out_scale, relu = arrays["meta"].tolist()
        return cls(
            name=name, weight=arrays["weight"].astype(np.int64),
            bias=arrays["bias"].astype(np.int64), multiplier=arrays["multiplier"].astype(np.int64),
            shift=arrays["shift"].astype(np.int64), weight_bits=int(bits), in_scale=in_scale,
            w_scale=arrays["w_scale"].astype(np.float64), out_scale=out_scale, relu=bool(relu),
        )


def requant_params(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split positive real multipliers into (M, S) with M in [2^30, 2^31) and S in [1, 62].

    `real ≈ M / 2^S`; M keeps 31 significant bits, so the rounding error is below 2^-31 relative.
    """
    real = np.asarray(real, dtype=np.float64)
    if not np.all(np.isfinite(real)) or np.any(real <= 0):
        raise ValueError("requantisation multipliers must be finite and positive")
    mant, exp = np.frexp(real)  # real = mant * 2^exp, mant in [0.5, 1)
    m = np.round(mant * 2.0**31).astype(np.int64)
    carry = m == 2**31  # mantissa rounded up to 1.0
    m = np.where(carry, 2**30, m)
    exp = np.where(carry, exp + 1, exp)
    s = 31 - exp.astype(np.int64)
    if np.any(s < 1) or np.any(s > 62):
        bad = real[(s < 1) | (s > 62)][0]
        raise ValueError(f"requantisation multiplier {bad:.3g} is outside [2^-31, 2^30]")
    return m, s


def weight_owners(layers: dict[str, IntLinear]) -> dict[str, str]:
    """Each layer's weight owner: the first layer with an identical integer weight array (a
    decoder shared by every block), else itself. What the engine stores and the size counts
    once."""
    first: dict[tuple[tuple[int, ...], bytes], str] = {}
    return {name: first.setdefault(
        (layer.weight.shape, np.ascontiguousarray(layer.weight, dtype=np.int64).tobytes()), name)
        for name, layer in layers.items()}
