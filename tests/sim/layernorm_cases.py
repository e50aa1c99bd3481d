"""Case generators for the LayerNorm unit's tests: int16 rows of chosen characters (ViT-like,
outliers, extremes), `layernorm_params` sets, gamma/beta tables with parameter regions among
extreme words, and the per-run record `layernorm_tb` plays."""

from __future__ import annotations

from typing import Any

import numpy as np

from vitfpga.quant.intops import layernorm_params

INT16 = (-(2**15), 2**15 - 1)
KINDS = ("small", "normal", "outlier", "large", "const", "near", "spike", "alt")


def make_row(rng: np.random.Generator, d: int, kind: str) -> np.ndarray:
    """One int16 row of a given character (one of KINDS)."""
    c = int(rng.integers(*INT16, endpoint=True))
    if kind == "small":
        x = rng.integers(-8, 9, size=d)
    elif kind == "normal":
        x = np.round(rng.normal(0, float(rng.choice([30.0, 1000.0, 8000.0])), size=d))
    elif kind == "outlier":  # ViT residual streams: a few channels far out
        x = np.round(rng.normal(0, 400.0, size=d))
        x[rng.integers(0, d, size=max(1, d // 40))] = rng.choice([-30000, 31000])
    elif kind == "large":
        x = rng.integers(*INT16, size=d, endpoint=True)
    elif kind == "const":
        x = np.full(d, c)
    elif kind == "near":  # near-constant: tiny variance on a large offset
        x = np.clip(c + rng.integers(-1, 2, size=d), *INT16)
    elif kind == "spike":  # one huge element, the rest equal
        x = np.full(d, int(rng.choice([-32768, 0, 5])))
        x[rng.integers(0, d)] = rng.choice([-32768, 32767])
    elif kind == "alt":  # alternating full scale
        lo = int(rng.choice([-32768, -32767]))
        x = np.where(np.arange(d) % 2 == 0, 32767, lo)
    else:
        raise ValueError(kind)
    return np.clip(x, *INT16).astype(np.int64)


def make_rows(rng: np.random.Generator, rows: int, d: int, kinds: tuple[str, ...] = KINDS
              ) -> np.ndarray:
    """`rows` x `d` int16 rows, each of a character drawn from `kinds`."""
    return np.stack([make_row(rng, d, str(rng.choice(kinds))) for _ in range(rows)]) if rows \
        else np.zeros((0, d), dtype=np.int64)


def random_params(rng: np.random.Generator, d: int, eps: float, in_scale: float,
                  out_scale: float, spread: float = 0.3) -> Any:
    """`layernorm_params` for random gamma ~ N(1, spread) and beta ~ N(0, spread)."""
    gamma = rng.normal(1.0, spread, size=d)
    beta = rng.normal(0.0, spread, size=d)
    return layernorm_params(gamma, beta, eps, in_scale, out_scale)


def make_tables(rng: np.random.Generator, pdepth: int,
                regions: list[tuple[int, int, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """gamma (int16) and beta (int32) tables: `layernorm_params` regions (base, d, params) at
    their bases, the rest extreme words (full-scale gamma and beta, zeros)."""
    gamma = rng.choice([-32768, -32767, -1, 0, 1, 32767], size=pdepth).astype(np.int64)
    beta = rng.choice([-(2**31), -(2**31) + 1, -1, 0, 1, 2**30, 2**31 - 1],
                      size=pdepth).astype(np.int64)
    for base, d, p in regions:
        gamma[base:base + d] = p.gamma
        beta[base:base + d] = p.beta
    return gamma, beta


def make_run(name: str, rng: np.random.Generator, x: np.ndarray, pbase: int, mult: int,
             shift: int, eps: int, *, full_rate: bool = True, in_gap: float = 0.0,
             out_stall: float = 0.0) -> dict[str, Any]:
    """One run of `layernorm_tb`'s case: the start inputs, the rows (row-major) and, unless at
    full rate, the input gap and output stall probabilities."""
    rows, d = x.shape
    return {"name": name, "d": int(d), "rows": int(rows), "pbase": int(pbase), "mult": int(mult),
            "shift": int(shift), "eps": int(eps), "x": [int(v) for v in x.reshape(-1)],
            "in_gap": 0.0 if full_rate else in_gap, "out_stall": 0.0 if full_rate else out_stall,
            "full_rate": full_rate, "seed": int(rng.integers(0, 2**31))}
