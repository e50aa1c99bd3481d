"""`vitfpga_softmax_vec`, the vector integer softmax unit (L scores a beat): bit exact with
`intmath.int_softmax` on randomised and extreme rows, padded lanes 0, exactly the header's
start -> done cycles at full rate, nothing lost or duplicated under input gaps and output
backpressure; under Icarus at L = 32, 4 and 1 (one build, many runs each; Verilator runs it in
the whole-model top); Verilator -Wall lint clean and Icarus compiling across L (L = 1 down to
TMAX = 1).

The score generators and the per-run record come from `softmax_cases`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.sim.softmax_cases import boundary_rows, edge_rows, make_run, qk_scores, write_lut
from vitfpga.quant.intops import softmax_params
from vitfpga.runtime.intmath import EXP2_LUT, int_softmax
from vitfpga.sim.tools import tool_env
from vitfpga.sim.unit import VIT_INCLUDE_DIR, run_unit

SOURCE = VIT_INCLUDE_DIR / "vitfpga_softmax_vec.v"
SOURCES = [SOURCE, VIT_INCLUDE_DIR / "vitfpga_fifo.v"]  # the unit and the FIFO it instantiates
TOP = "vitfpga_softmax_vec"
TB_MODULE = "vitfpga.sim.tb.softmax_vec_tb"
TMAX = 256
LATENCY_CONST = 37  # the header's start -> done: (R + 2)*B + 2*log2(L) + 37 at full rate


def full_rate_cycles(rows: int, t: int, lanes: int) -> int:
    """Start -> done cycles with input always valid and output always ready."""
    beats = -(-t // lanes)
    return (rows + 2) * beats + 2 * (lanes.bit_length() - 1) + LATENCY_CONST


def _unpack(beats: list[int], rows: int, t: int, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """Output beats -> (rows x t probabilities, the padded lanes' values)."""
    per_row = -(-t // lanes)
    assert len(beats) == rows * per_row, f"{len(beats)} beats, {rows * per_row} expected"
    lanes_out = np.array([[(b >> (8 * j)) & 0xFF for j in range(lanes)] for b in beats],
                         dtype=np.int64).reshape(rows, per_row * lanes)
    return lanes_out[:, :t], lanes_out[:, t:]


def _judge(runs: list[dict[str, Any]], result: dict[str, Any], lanes: int) -> list[tuple]:
    """Every output against int_softmax, padded lanes 0, one done pulse, idle after, and the
    exact cycle count at full rate; returns (case, rows, t, cycles, mode) per run."""
    got_runs = result["runs"]
    assert len(got_runs) == len(runs), "a run timed out"
    report = []
    for job, got in zip(runs, got_runs, strict=True):
        where = f"L={lanes} {job['label']}"
        assert not got["timed_out"], f"{where}: timed out"
        assert got["done_pulses"] == 1 and got["extra_out"] == 0, where
        assert got["idle_after"] == 1, where
        rows, t = job["rows"], job["t"]
        full_rate = job["gap_p"] == 0 and job["stall_p"] == 0
        report.append((where, rows, t, got["cycles"], "full rate" if full_rate else "stalls"))
        if rows == 0:
            assert got["out"] == [], where
            continue
        probs, pad = _unpack(got["out"], rows, t, lanes)
        scores = np.asarray(job["scores"], dtype=np.int64).reshape(rows, t)
        expect = int_softmax(scores, job["mult"], job["shift"], EXP2_LUT, job["prob_max"])
        bad = np.argwhere(probs != expect)
        assert bad.size == 0, (f"{where}: {len(bad)} wrong, first at {tuple(bad[0])}: "
                               f"{probs[tuple(bad[0])]} != {expect[tuple(bad[0])]}")
        assert not pad.any(), f"{where}: padded lanes not 0"
        if full_rate:
            want = full_rate_cycles(rows, t, lanes)
            assert got["cycles"] == want, f"{where}: {got['cycles']} cycles != {want}"
    return report


def _simulate(runs: list[dict[str, Any]], lanes: int, tmax: int, build: Path,
              sim: str) -> dict[str, Any]:
    build.mkdir(parents=True, exist_ok=True)
    lut = build / "exp2_lut.mem"
    write_lut(lut)
    return run_unit(toplevel=TOP, sources=SOURCES, test_module=TB_MODULE,
                    parameters={"TMAX": tmax, "L": lanes, "EXP_FILE": f'"{lut}"'},
                    case={"seed": 11, "lanes": lanes, "runs": runs}, build_dir=build,
                    sim=sim)


def _realistic(rng: np.random.Generator, t: int, rows: int, hd: int, prob_max: int = 127,
               **kw: Any) -> dict[str, Any]:
    scale = float(rng.choice([3e-4, 1e-3, 4e-3, 2e-2])) / np.sqrt(hd / 16)
    m, s = softmax_params(scale)
    return make_run(qk_scores(rng, t, rows, hd), m, s, prob_max,
                label=f"qk t={t} hd={hd} scale={scale:.2g}", **kw)


def _build_runs(seed: int, lanes: int, tmax: int) -> list[dict[str, Any]]:
    """Row lengths around the lane count (1, L-1, L, L+1, 2L+1), 13 and DeiT-Tiny's 197, random
    ones, stalls in bursts, extremes of the scores and of (M, S), u next to its boundaries
    through shifts S = 1 .. 40; every t <= tmax."""
    rng = np.random.default_rng(seed)
    deit = min(197, tmax)
    runs = [_realistic(rng, deit, 3, 64), _realistic(rng, tmax, 3, 16)]  # tmax: the FIFO sizes
    # 13: short rows, the once-a-row division at its busiest (a serial divider would pace them).
    for t in sorted({1, max(1, lanes - 1), lanes, lanes + 1, 2 * lanes + 1, 13}):
        runs.append(_realistic(rng, t, 5, 16))
    for _ in range(3):
        t = int(rng.integers(1, tmax + 1))
        runs.append(_realistic(rng, t, int(rng.integers(1, 5)), 32,
                               prob_max=int(rng.choice([127, 100, 1]))))
    # Backpressure and input gaps, in bursts up to 30 cycles, on long and one-beat rows.
    for t, gap, stall, burst in [(deit, 0.2, 0.5, 1), (lanes + 1, 0.1, 0.2, 30),
                                 (max(1, lanes // 2), 0.2, 0.3, 30), (40, 0.0, 0.3, 12),
                                 (3 * lanes, 0.3, 0.0, 12)]:
        runs.append(_realistic(rng, t, 6, 16, gap_p=gap, stall_p=stall, burst=burst))
    for t, (m, s), pm, stall in [(deit, softmax_params(2e-3), 127, 0.0),
                                 (lanes + 1, softmax_params(1.0), 127, 0.3),
                                 (40, (2**31 - 1, 1), 127, 0.0),  # largest factor
                                 (lanes, (1, 33), 127, 0.0),  # smallest: u is the fraction
                                 (24, (2**30, 32), 3, 0.0)]:
        runs.append(make_run(edge_rows(rng, t), m, s, pm, gap_p=stall, stall_p=stall,
                             label=f"edges t={t} M={m} S={s}"))
    for m, s in [(1, 1), (3, 2), (1, 9), (2**31 - 1, 40), (1234567891, 33)]:
        runs.append(make_run(boundary_rows(m, s, 64, rng), m, s, 127,
                             label=f"u boundaries M={m} S={s}"))
    narrow = rng.integers(-(2**29), 2**29, (3, 50))
    runs.append(make_run(narrow, 1, 62, 127, label="M=1 S=62"))  # every u 0: uniform rows
    runs.append(make_run(narrow, 2**31 - 1, 62, 127, label="M=2^31-1 S=62"))
    runs.append(make_run(np.zeros((0, 4), dtype=np.int64), 2**30, 30, 127, label="rows=0"))
    assert all(run["t"] <= tmax for run in runs)
    return runs


def _check(lanes: int, tmax: int, sim: str, build: Path) -> None:
    runs = _build_runs(seed=20261205 + lanes, lanes=lanes, tmax=tmax)
    report = _judge(runs, _simulate(runs, lanes, tmax, build, sim), lanes)
    print(f"{sim} (case, rows, t, start-to-done cycles, mode) at L={lanes}, TMAX={tmax}:")
    for line in report:
        print("   ", line)


# Icarus plays every lane count (its build is quick). Two TMAX put a FIFO at its tightest (the
# header's sizes, then rounded up to a power of two): L = 4, TMAX = 232 fills the score FIFO's
# 64 = 58 + 2 + 4 beats exactly, L = 1, TMAX = 90 the e FIFO's 128 = 90 + 0 + 38.
@pytest.mark.icarus
@pytest.mark.parametrize("lanes,tmax", [(32, 256), (4, 232), (1, 90)])
def test_softmax_vec_bit_exact(lanes: int, tmax: int, tmp_path: Path) -> None:
    _check(lanes, tmax, "icarus", tmp_path / "build")


# Verilator runs the unit inside the whole-model top at L = 4, 8 and 32 (tests/sim/test_vit_rtl.py,
# tests/e2e/test_whole_model.py), every probability reaching the logits; a unit build of its own
# there would cost a minute of the suite for a second reading.


@pytest.mark.verilator
@pytest.mark.parametrize("lanes,tmax", [(1, 256), (1, 197), (1, 17), (1, 1), (4, 197), (32, 256),
                                       (64, 256), (64, 17)])
def test_softmax_vec_lints_clean(lanes: int, tmax: int) -> None:
    with tool_env("verilator"):
        done = subprocess.run(["verilator", "--lint-only", "-Wall", f"-GTMAX={tmax}",
                               f"-GL={lanes}", "--top-module", TOP, *map(str, SOURCES)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.icarus
@pytest.mark.parametrize("lanes", [32, 1])
def test_softmax_vec_compiles_under_icarus(lanes: int, tmp_path: Path) -> None:
    done = subprocess.run(["iverilog", "-g2005", "-Wall", "-s", TOP, f"-P{TOP}.L={lanes}",
                           "-o", str(tmp_path / "smv.vvp"), *map(str, SOURCES)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
