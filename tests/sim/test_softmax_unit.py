"""`vitfpga_softmax`, the integer softmax unit: bit exact with `intmath.int_softmax` on randomised
shapes and edge cases under Verilator (one build, many runs) and on a few under Icarus, at one
element per clock when nothing stalls it, lint clean under Verilator -Wall, and compiling
under Icarus with -Wall."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vitfpga.quant.intops import softmax_params
from vitfpga.runtime.intmath import EXP2_LUT, int_softmax
from vitfpga.sim.tools import tool_env
from vitfpga.sim.unit import VIT_INCLUDE_DIR, run_unit

SOURCE = VIT_INCLUDE_DIR / "vitfpga_softmax.v"
TB_MODULE = "vitfpga.sim.tb.softmax_tb"
TMAX = 256
I32_MIN, I32_MAX = -(2**31), 2**31 - 1

# The header comment's timing claim with input always valid and output always ready: cycles
# from the edge that takes `start` to the edge that raises `done`.
ROW_PERIOD_MIN = 13  # the once-per-row division paces rows shorter than this
LATENCY_CONST = 23


def latency_bound(t: int, rows: int) -> int:
    return rows * max(t, ROW_PERIOD_MIN) + 2 * t + LATENCY_CONST


def _write_lut(path: Path) -> None:
    path.write_text("".join(f"{int(v):06x}\n" for v in EXP2_LUT))


def _qk_scores(rng: np.random.Generator, t: int, rows: int, hd: int) -> np.ndarray:
    """`rows` query rows of a q.k^T score matrix: int8 q and k (roughly normal, clipped, as
    quantised activations are), hd products summed exactly."""
    sigma = float(rng.uniform(10, 60))
    q = np.clip(np.round(rng.normal(0, sigma, (rows, hd))), -128, 127).astype(np.int64)
    k = np.clip(np.round(rng.normal(0, sigma, (t, hd))), -128, 127).astype(np.int64)
    return q @ k.T


def _edge_rows(rng: np.random.Generator, t: int) -> np.ndarray:
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


def _boundary_rows(mult: int, shift: int, t: int, rng: np.random.Generator) -> np.ndarray:
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


def _run(scores: np.ndarray, mult: int, shift: int, prob_max: int, *, gap_p: float = 0.0,
         stall_p: float = 0.0, burst: int = 1, label: str = "") -> dict[str, Any]:
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


def _build_runs(seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    scales = [3e-4, 1e-3, 4e-3, 2e-2]  # q.k score scales: soft to nearly one-hot rows
    runs: list[dict[str, Any]] = []

    def realistic(t: int, rows: int, hd: int, prob_max: int = 127, **kw: Any) -> None:
        scale = float(rng.choice(scales)) / np.sqrt(hd / 16)
        m, s = softmax_params(scale)
        runs.append(_run(_qk_scores(rng, t, rows, hd), m, s, prob_max,
                         label=f"qk t={t} hd={hd} scale={scale:.2g}", **kw))

    realistic(197, 3, 64)  # DeiT-Tiny tokens
    realistic(17, 6, 8)  # the digits model
    realistic(17, 5, 16, prob_max=100, gap_p=0.3, stall_p=0.3)
    realistic(197, 2, 64, prob_max=127, gap_p=0.2, stall_p=0.5)
    for i in range(6):
        t = int(rng.integers(1, TMAX + 1))
        rows = int(rng.integers(1, 7))
        hd = int(rng.integers(8, 65))
        stall = 0.3 if i % 3 == 2 else 0.0
        realistic(t, rows, hd, prob_max=int(rng.choice([127, 100, 64, 1])), gap_p=stall,
                  stall_p=stall)
    realistic(TMAX, 2, 32)
    for t in (1, 2, 5, 12, 13, 16):  # short rows: where the division paces the rows
        realistic(t, 6, 16)
    # Backpressure in bursts (pauses of up to 30 cycles) on short rows: B waits on D's reads of
    # the e bank it writes, the last element of a row on the divider, D on the division.
    for t, gap, burst in [(16, 0.0, 30), (13, 0.1, 30), (20, 0.05, 12), (3, 0.2, 30),
                          (40, 0.1, 30)]:
        realistic(t, 6, 16, gap_p=gap, stall_p=0.2, burst=burst)
    # Edge cases. A full int32 span keeps S <= 33 (the golden's int64 bound, see _run).
    for t, (m, s), pm, stall in [(64, softmax_params(2e-3), 127, 0.0),
                                 (33, softmax_params(1.0), 127, 0.3),
                                 (40, (2**31 - 1, 1), 127, 0.0),  # largest factor: whole clamps
                                 (40, (2**31 - 1, 33), 90, 0.0),
                                 (24, (1, 33), 127, 0.0),  # smallest: u is the fraction only
                                 (24, (2**30, 32), 3, 0.0)]:
        runs.append(_run(_edge_rows(rng, t), m, s, pm, gap_p=stall, stall_p=stall,
                         label=f"edges t={t} M={m} S={s}"))
    # u next to every boundary, through both steps of the shift (S-1 = 0, 8, 1, 39, 32).
    for m, s in [(1, 1), (1, 9), (3, 2), (2**31 - 1, 40), (1234567891, 33)]:
        runs.append(_run(_boundary_rows(m, s, 64, rng), m, s, 127,
                         label=f"u boundaries M={m} S={s}"))
    # S at its top with a narrower span, M = 1 (every u is 0: a uniform row).
    narrow = rng.integers(-(2**29), 2**29, (3, 50))
    runs.append(_run(narrow, 1, 62, 127, label="M=1 S=62"))
    runs.append(_run(narrow, 2**31 - 1, 62, 127, label="M=2^31-1 S=62"))
    runs.append(_run(np.zeros((0, 4), dtype=np.int64), 2**30, 30, 127, label="rows=0"))
    return runs


def _simulate(runs: list[dict[str, Any]], tmax: int, build: Path, sim: str) -> dict[str, Any]:
    build.mkdir(parents=True, exist_ok=True)
    lut = build / "exp2_lut.mem"
    _write_lut(lut)
    return run_unit(toplevel="vitfpga_softmax", sources=[SOURCE], test_module=TB_MODULE,
                    parameters={"TMAX": tmax, "EXP_FILE": f'"{lut}"'},
                    case={"seed": 7, "runs": runs}, build_dir=build, sim=sim)


def _judge(runs: list[dict[str, Any]], result: dict[str, Any]) -> tuple[int, list[tuple]]:
    """Compare every output with int_softmax and check the handshake's end and the timing
    claim; returns the number of values compared and (case, rows, t, cycles, mode) per run."""
    got_runs = result["runs"]
    assert len(got_runs) == len(runs), "a run timed out"
    compared = 0
    report = []
    for job, got in zip(runs, got_runs, strict=True):
        where = job["label"]
        assert not got["timed_out"], f"{where}: timed out"
        assert got["done_pulses"] == 1 and got["extra_out"] == 0, where
        assert got["idle_after"] == 1, where
        rows, t = job["rows"], job["t"]
        scores = np.asarray(job["scores"], dtype=np.int64).reshape(rows, t)
        expect = int_softmax(scores, job["mult"], job["shift"], EXP2_LUT, job["prob_max"])
        expect = [int(v) for v in expect.reshape(-1)]
        assert len(got["out"]) == len(expect), f"{where}: {len(got['out'])} outputs"
        bad = [i for i, (a, b) in enumerate(zip(got["out"], expect, strict=True)) if a != b]
        assert not bad, (f"{where}: {len(bad)} wrong, first at {bad[0]}: "
                         f"{got['out'][bad[0]]} != {expect[bad[0]]}")
        compared += len(expect)
        cycles = got["cycles"]
        full_rate = job["gap_p"] == 0 and job["stall_p"] == 0
        if full_rate:
            bound = latency_bound(t, rows) if rows else 1
            assert cycles <= bound, f"{where}: {cycles} cycles > {bound}"
        report.append((where, rows, t, cycles, "full rate" if full_rate else "stalls"))
    return compared, report


@pytest.mark.verilator
def test_softmax_bit_exact(tmp_path: Path) -> None:
    runs = _build_runs(seed=20240601)
    result = _simulate(runs, TMAX, tmp_path / "build", "verilator")
    compared, report = _judge(runs, result)
    assert compared > 0
    print(f"{compared} values compared over {len(runs)} runs; (case, rows, t, start-to-done "
          "cycles, mode):")
    for line in report:
        print("   ", line)


@pytest.mark.icarus
def test_softmax_on_icarus(tmp_path: Path) -> None:
    # A few short runs under the other simulator (a second reading of the same Verilog), at a
    # TMAX that is not a power of two.
    rng = np.random.default_rng(5)
    m, s = softmax_params(4e-3)
    runs = [_run(_qk_scores(rng, 17, 3, 16), m, s, 127, label="qk t=17"),
            _run(_qk_scores(rng, 14, 4, 16), m, s, 100, gap_p=0.2, stall_p=0.2, burst=10,
                 label="qk t=14 stalls"),
            _run(_edge_rows(rng, 9), *softmax_params(0.01), 127, label="edges t=9")]
    compared, report = _judge(runs, _simulate(runs, 20, tmp_path / "build", "icarus"))
    assert compared > 0
    print(f"Icarus: {compared} values compared; {report}")


LINT_SHAPES = [256, 197, 17, 1]


@pytest.mark.verilator
@pytest.mark.parametrize("tmax", LINT_SHAPES)
def test_softmax_lints_clean(tmax: int) -> None:
    with tool_env("verilator"):
        done = subprocess.run(["verilator", "--lint-only", "-Wall", f"-GTMAX={tmax}",
                               str(SOURCE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.icarus
@pytest.mark.parametrize("tmax", [256, 17])
def test_softmax_compiles_under_icarus(tmax: int, tmp_path: Path) -> None:
    done = subprocess.run(["iverilog", "-g2005", "-Wall", "-s", "vitfpga_softmax",
                           f"-Pvitfpga_softmax.TMAX={tmax}", "-o", str(tmp_path / "sm.vvp"),
                           str(SOURCE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
