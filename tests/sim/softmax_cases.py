"""Case generators for the softmax unit's tests: q.k^T score rows, rows of int32 extremes, rows
whose exponent argument sits on the unit's internal boundaries, the exp2 ROM file, and the
per-run record `softmax_tb` plays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vitfpga.runtime.intmath import EXP2_LUT

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def write_lut(path: Path) -> None:
    """The exp2 ROM (`EXP2_LUT`) as a $readmemh file."""
    path.write_text("".join(f"{int(v):06x}\n" for v in EXP2_LUT))


def qk_scores(rng: np.random.Generator, t: int, rows: int, hd: int) -> np.ndarray:
    """`rows` query rows of a q.k^T score matrix: int8 q and k (roughly normal, clipped, as
    quantised activations are), hd products summed exactly."""
    sigma = float(rng.uniform(10, 60))
    q = np.clip(np.round(rng.normal(0, sigma, (rows, hd))), -128, 127).astype(np.int64)
    k = np.clip(np.round(rng.normal(0, sigma, (t, hd))), -128, 127).astype(np.int64)
    return q @ k.T


def edge_rows(rng: np.random.Generator, t: int) -> np.ndarray:
    """Six rows of extremes: all equal, one huge, the full int32 span, negative extremes, both
    ends of int32, a narrow spread (only the ROM's fraction moves)."""
    rows = [np.full(t, int(rng.integers(I32_MIN, I32_MAX)), dtype=np.int64)]
    one = rng.integers(-1000, 1000, t)
    one[int(rng.integers(0, t))] = I32_MAX
    rows.append(one)
    rows.append(rng.integers(I32_MIN, I32_MAX, t, endpoint=True))
    neg = I32_MIN + rng.integers(0, 50, t)
    neg[int(rng.integers(0, t))] = I32_MIN
    rows.append(neg)
    both = rng.integers(I32_MIN, I32_MAX, t, endpoint=True)
    both[: max(1, t // 2)] = I32_MIN
    both[-1] = I32_MAX
    rows.append(rng.permutation(both))
    rows.append(rng.integers(0, 3, t) + 7)
    return np.stack(rows).astype(np.int64)


def boundary_rows(mult: int, shift: int, t: int, rng: np.random.Generator) -> np.ndarray:
    """Two rows (maximum 0) whose d put u = (d*M + 2^(S-1)) >> S on and next to the edges
    that matter: the ROM index wrapping, e shifted to 0 or 1, whole's clamp at 62 and u's
    bits above 14."""
    targets = [0, 1, 2, 255, 256, 257, 511, 512, 22 * 256, 23 * 256 - 1, 23 * 256,
               62 * 256 - 1, 62 * 256, 62 * 256 + 1, 2**14 - 1, 2**14, 2**14 + 1, 2**15]
    ds = set()
    for u in targets:
        d0 = -(-(u * 2**shift - 2 ** (shift - 1)) // mult)  # the least d with u(d) >= u
        ds.update(d for d in (d0 - 1, d0, d0 + 1) if 0 <= d < 2**31)
    d = np.array(sorted(ds), dtype=np.int64)
    rows = []
    for _ in range(2):
        pick = rng.choice(d, t - 1, replace=len(d) < t - 1)
        rows.append(rng.permutation(np.concatenate([[0], -pick])))
    return np.stack(rows)


def make_run(scores: np.ndarray, mult: int, shift: int, prob_max: int, *, gap_p: float = 0.0,
             stall_p: float = 0.0, burst: int = 1, label: str = "") -> dict[str, Any]:
    """One run of `softmax_tb`'s case: rows x t scores, the control inputs, and the input
    pause / output pause probabilities with the longest pause (`burst` cycles)."""
    rows, t = scores.shape if scores.size else (0, 1)
    if scores.size:
        # int_softmax computes d*M + 2^(S-1) in int64: keep the cases where that is exact (the
        # unit is exact everywhere; the golden model wraps past 2^63).
        d_max = int(scores.max(axis=-1).astype(np.int64).max() - scores.min())
        assert d_max * mult + (1 << (shift - 1)) < 2**63, label
    return {"label": label, "t": int(t), "rows": int(rows), "mult": int(mult),
            "shift": int(shift), "prob_max": int(prob_max),
            "scores": [int(v) for v in scores.reshape(-1)], "gap_p": gap_p, "stall_p": stall_p,
            "burst": burst}
