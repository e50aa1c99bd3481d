"""`vitfpga_layernorm_vec`: bit-exact with `int_layernorm` on randomised and extreme rows, L
elements a clock at full rate with the module header's exact start -> done count, lint clean
under Verilator -Wall, compiling under Icarus.

One build per lane count plays every run of its case back to back: L = 32 at DeiT-Tiny's
D = 192 and the digits model's D = 32 (one beat a row), L = 4 over many shapes (d = L too), L = 1
(no adder tree, d = 1) at the smallest DMAX under Icarus and, under Verilator, at DMAX = 256 over
shapes D = 1..256 at any table base with eps and (M, S) at their extremes.
Rows, table regions and run records come from `layernorm_cases`; the tables are written in the
vector unit's layout (one L-element word a line).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.sim.layernorm_cases import make_row, make_rows, make_run, make_tables, random_params
from vitfpga.runtime.intmath import int_layernorm
from vitfpga.sim.tools import tool_env
from vitfpga.sim.unit import VIT_INCLUDE_DIR, run_unit

SOURCE = VIT_INCLUDE_DIR / "vitfpga_layernorm_vec.v"
SOURCES = [SOURCE, VIT_INCLUDE_DIR / "vitfpga_fifo.v"]  # the unit and the FIFO it instantiates
TB = "vitfpga.sim.tb.layernorm_vec_tb"
TOP = "vitfpga_layernorm_vec"
# The module header's figure: start -> done = rows*d/L + d/L + LATENCY + log2(L) at full rate.
LATENCY = 76


def full_rate_cycles(rows: int, d: int, lanes: int) -> int:
    """The header's exact start -> done count with input always valid and output ready."""
    beats = d // lanes
    return rows * beats + beats + LATENCY + (lanes.bit_length() - 1) if rows else 0


def _vec_mem(path: Path, values: np.ndarray, bits: int, lanes: int) -> None:
    """The unit's table layout: line i holds elements i*L .. i*L+L-1, element i*L+j in bits
    [bits*j +: bits] (so the line's hex digits list the highest element first)."""
    digits = bits // 4
    mask = (1 << bits) - 1
    words = np.asarray(values, dtype=np.int64).reshape(-1, lanes)
    path.write_text("".join("".join(f"{int(v) & mask:0{digits}x}" for v in word[::-1]) + "\n"
                            for word in words))


def _judge(gamma: np.ndarray, beta: np.ndarray, runs: list[dict[str, Any]],
           result: dict[str, Any], lanes: int) -> tuple[int, list[dict[str, Any]]]:
    """Compare every output with int_layernorm and every full-rate run's cycles with the
    header's count; return the elements compared and the per-run timing."""
    assert len(result["runs"]) == len(runs)
    compared = 0
    timing = []
    for run, got in zip(runs, result["runs"], strict=True):
        d, rows, pb = run["d"], run["rows"], run["pbase"]
        where = f"run {run['name']} (L={lanes}, d={d}, rows={rows}, pbase={pb})"
        assert got["errors"] == [], f"{where}: {got['errors'][:5]}"
        assert got["dones"] == 1, f"{where}: {got['dones']} done pulses"
        x = np.asarray(run["x"], dtype=np.int64).reshape(rows, d)
        want = int_layernorm(x, gamma[pb:pb + d], beta[pb:pb + d],
                             [run["mult"], run["shift"], run["eps"]]).reshape(-1)
        y = np.asarray(got["y"], dtype=np.int64)
        assert y.shape == want.shape, f"{where}: {y.size} outputs, want {want.size}"
        bad = np.flatnonzero(y != want)
        assert bad.size == 0, (f"{where}: {bad.size} outputs differ, first at {bad[0]}: "
                               f"{y[bad[0]]} != {want[bad[0]]}")
        compared += want.size
        exact = full_rate_cycles(rows, d, lanes)
        if run["full_rate"]:
            assert got["cycles"] == exact, f"{where}: {got['cycles']} cycles, want {exact}"
        else:
            assert got["cycles"] >= exact, f"{where}: {got['cycles']} cycles < {exact}"
        timing.append({"name": run["name"], "d": d, "rows": rows, "cycles": got["cycles"],
                       "full_rate": run["full_rate"], "formula": exact})
    return compared, timing


def _simulate(sim: str, build: Path, lanes: int, dmax: int, gamma: np.ndarray,
              beta: np.ndarray, runs: list[dict[str, Any]]) -> int:
    build.mkdir(parents=True, exist_ok=True)
    _vec_mem(build / "ln_gamma.mem", gamma, 16, lanes)
    _vec_mem(build / "ln_beta.mem", beta, 32, lanes)
    # String parameters reach the simulator's -G / -P quoted.
    params: dict[str, int | str] = {
        "DMAX": dmax, "PDEPTH": gamma.size, "L": lanes,
        "GAMMA_FILE": f'"{build / "ln_gamma.mem"}"', "BETA_FILE": f'"{build / "ln_beta.mem"}"'}
    result = run_unit(toplevel=TOP, sources=SOURCES, test_module=TB, parameters=params,
                      case={"runs": runs}, build_dir=build, sim=sim)
    compared, timing = _judge(gamma, beta, runs, result, lanes)
    (build / "cycles.json").write_text(json.dumps(timing, indent=1))
    for t in timing:
        print(f"{sim} L={lanes} {t['name']}: d={t['d']} rows={t['rows']} start->done "
              f"{t['cycles']} cycles (formula {t['formula']}"
              + (")" if t["full_rate"] else ", stalled run)"))
    assert compared == sum(r["rows"] * r["d"] for r in runs) > 0
    assert sum(t["full_rate"] and t["rows"] > 0 for t in timing) >= 2  # timing was checked
    return compared


def _pbase(rng: np.random.Generator, pdepth: int, d: int, lanes: int) -> int:
    """A random table base, a multiple of L with the row inside the table."""
    return int(rng.integers(0, (pdepth - d) // lanes + 1)) * lanes


def _l32_case(seed: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """L = 32: DeiT-Tiny's D = 192 and the digits model's D = 32 (= L, one beat a row)."""
    rng = np.random.default_rng(seed)
    deit = random_params(rng, 192, 1e-6, 2e-3, 0.05)
    digits = random_params(rng, 32, 1e-5, 1e-2, 0.03, spread=0.1)
    gamma, beta = make_tables(rng, 512, [(0, 192, deit), (192, 32, digits)])
    edge = ("spike", "alt", "const", "near")
    runs = [
        make_run("deit_d192", rng, make_rows(rng, 5, 192, ("normal", "outlier")), 0, deit.mult,
                 deit.shift, deit.eps),
        make_run("digits_d32", rng, make_rows(rng, 9, 32), 192, digits.mult, digits.shift,
                 digits.eps),
        make_run("extremes_d192", rng, np.stack([make_row(rng, 192, k) for k in (*edge, "large")]),
                 0, deit.mult, deit.shift, 0, full_rate=False, in_gap=0.3, out_stall=0.4),
        make_run("extremes_d32", rng,
                 np.stack([make_row(rng, 32, k) for k in (*edge, "small")] * 2),
                 _pbase(rng, 512, 32, 32), digits.mult, digits.shift, 0, full_rate=False,
                 out_stall=0.7),
        make_run("wide_d64", rng, make_rows(rng, 3, 64), 448, 2**31 - 1, 40, 2**62 - 1),
        make_run("saturate_d96", rng, make_rows(rng, 2, 96), 416, 2**31 - 1, 1, 3),
        make_run("shift62_d32", rng, make_rows(rng, 3, 32), 480, 2**30, 62, 3),
        make_run("empty", rng, np.zeros((0, 64), dtype=np.int64), 64, deit.mult, deit.shift, 1),
        make_run("deit_stress", rng, make_rows(rng, 4, 192), 0, deit.mult, deit.shift, deit.eps,
                 full_rate=False, in_gap=0.2, out_stall=0.2),
    ]
    return gamma, beta, runs


def _random_params(rng: np.random.Generator, d: int) -> Any:
    """`random_params` at a random eps, input and output scale and spread."""
    return random_params(rng, d, float(10.0 ** rng.uniform(-7, -4)),
                         float(10.0 ** rng.uniform(-4, -1)),
                         float(10.0 ** rng.uniform(-2.5, -0.5)),
                         spread=float(rng.uniform(0.05, 2)))


def _l4_case(seed: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """L = 4 over many shapes: d = L, 32, 192, 256 and random multiples of 4."""
    rng = np.random.default_rng(seed)
    deit = random_params(rng, 192, 1e-6, 2e-3, 0.05)
    wide = random_params(rng, 256, 1e-5, 1e-3, 0.1, spread=1.0)
    gamma, beta = make_tables(rng, 512, [(0, 192, deit), (256, 256, wide)])
    runs = [
        make_run("deit_d192", rng, make_rows(rng, 3, 192, ("normal", "outlier")), 0, deit.mult,
                 deit.shift, deit.eps),
        make_run("wide_d256", rng, make_rows(rng, 2, 256, ("large", "spike", "normal")), 256,
                 wide.mult, wide.shift, wide.eps),
        make_run("d4", rng, make_rows(rng, 12, 4), _pbase(rng, 512, 4, 4), deit.mult,
                 deit.shift, deit.eps),
        make_run("d4_eps0_stall", rng, make_rows(rng, 8, 4), _pbase(rng, 512, 4, 4), wide.mult,
                 wide.shift, 0, full_rate=False, in_gap=0.3, out_stall=0.5),
        make_run("d32", rng, make_rows(rng, 6, 32), _pbase(rng, 512, 32, 4), deit.mult,
                 deit.shift, deit.eps),
        make_run("extremes_d64", rng,
                 np.stack([make_row(rng, 64, k) for k in
                           ("spike", "spike", "alt", "alt", "const", "near")]),
                 _pbase(rng, 512, 64, 4), wide.mult, wide.shift, 0, full_rate=False, in_gap=0.2,
                 out_stall=0.3),
        make_run("eps_2^40-1", rng, make_rows(rng, 2, 100, ("large", "small")), 12, 2**30, 30,
                 2**40 - 1, full_rate=False, in_gap=0.4),
    ]
    for i in range(4):
        d = 4 * int(rng.integers(1, 65))
        p = _random_params(rng, d)
        stress = i % 2 == 1
        runs.append(make_run(f"random{i}_d{d}", rng, make_rows(rng, int(rng.integers(1, 6)), d),
                             _pbase(rng, 512, d, 4), p.mult, p.shift, p.eps,
                             full_rate=not stress, in_gap=0.3, out_stall=0.3))
    return gamma, beta, runs


def _l1_case(seed: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """L = 1 at DMAX = 256: DeiT-Tiny's and the digits model's tables and a D = 256 one, short
    and random shapes at any base, eps and (M, S) at their extremes, stalls."""
    rng = np.random.default_rng(seed)
    deit = random_params(rng, 192, 1e-6, 2e-3, 0.05)
    digits = random_params(rng, 32, 1e-5, 1e-2, 0.03, spread=0.1)
    wide = random_params(rng, 256, 1e-5, 1e-3, 0.1, spread=1.0)
    gamma, beta = make_tables(rng, 512, [(0, 192, deit), (192, 32, digits), (224, 256, wide)])
    runs = [
        make_run("deit_d192", rng, make_rows(rng, 2, 192, ("normal", "outlier")), 0, deit.mult,
                 deit.shift, deit.eps),
        make_run("digits_d32", rng, make_rows(rng, 4, 32, ("normal", "small", "outlier")), 192,
                 digits.mult, digits.shift, digits.eps),
        make_run("wide_d256", rng, make_rows(rng, 2, 256, ("large", "spike", "normal")), 224,
                 wide.mult, wide.shift, wide.eps),
        make_run("short_d5", rng, make_rows(rng, 6, 5), int(rng.integers(0, 508)), deit.mult,
                 deit.shift, deit.eps),
        make_run("extremes_d64", rng,
                 np.stack([make_row(rng, 64, k) for k in ("spike", "alt", "const", "near")]),
                 int(rng.integers(0, 449)), wide.mult, wide.shift, 0, full_rate=False,
                 in_gap=0.2, out_stall=0.3),
        make_run("d1_eps0", rng, make_rows(rng, 5, 1), 511, digits.mult, digits.shift, 0,
                 full_rate=False, out_stall=0.5),
        make_run("empty", rng, np.zeros((0, 37), dtype=np.int64), 3, deit.mult, deit.shift, 1),
        make_run("eps_2^62-1", rng, make_rows(rng, 2, 100, ("large", "alt", "const")), 301,
                 2**31 - 1, 40, 2**62 - 1),
        make_run("saturate", rng, make_rows(rng, 2, 48), 461, 2**31 - 1, 1, 3),
        make_run("shift62", rng, make_rows(rng, 2, 48), 463, 2**30, 62, 3),
    ]
    for i in range(3):
        d = int(rng.integers(1, 257))
        p = _random_params(rng, d)
        runs.append(make_run(f"random{i}_d{d}", rng, make_rows(rng, int(rng.integers(1, 4)), d),
                             int(rng.integers(0, 513 - d)), p.mult, p.shift, p.eps,
                             full_rate=i != 1, in_gap=0.3, out_stall=0.3))
    return gamma, beta, runs


# Icarus: these cases run a few thousand clocks, where its build (about a second) beats a
# Verilator build of the lanes (a minute or more); Verilator lints every configuration below.
@pytest.mark.icarus
def test_layernorm_vec_l32_matches_int_layernorm(tmp_path: Path) -> None:
    gamma, beta, runs = _l32_case(seed=32)
    assert _simulate("icarus", tmp_path / "l32", 32, 192, gamma, beta, runs) > 3000


@pytest.mark.icarus
def test_layernorm_vec_l4_matches_int_layernorm(tmp_path: Path) -> None:
    gamma, beta, runs = _l4_case(seed=4)
    assert _simulate("icarus", tmp_path / "l4", 4, 256, gamma, beta, runs) > 2000


@pytest.mark.icarus
def test_layernorm_vec_l1_on_icarus(tmp_path: Path) -> None:
    # L = 1: no adder tree; d = 1 (one beat a row, every beat a row end) and the smallest DMAX.
    rng = np.random.default_rng(1)
    p = random_params(rng, 16, 1e-6, 1e-3, 0.05)
    gamma, beta = make_tables(rng, 24, [(0, 16, p)])
    runs = [
        make_run("d16", rng, make_rows(rng, 3, 16), 0, p.mult, p.shift, p.eps),
        make_run("d1", rng, make_rows(rng, 6, 1), 17, p.mult, p.shift, 5),
        make_run("extremes_d16", rng,
                 np.stack([make_row(rng, 16, k) for k in ("spike", "alt", "const")]),
                 8, p.mult, p.shift, 0, full_rate=False, in_gap=0.3, out_stall=0.3),
        make_run("d5", rng, make_rows(rng, 2, 5), 19, p.mult, p.shift, p.eps),
    ]
    _simulate("icarus", tmp_path / "l1", 1, 16, gamma, beta, runs)


@pytest.mark.verilator
def test_layernorm_vec_l1_on_verilator(tmp_path: Path) -> None:
    # The other simulator (a second reading of the Verilog), at L = 1 where its build is quick.
    gamma, beta, runs = _l1_case(seed=2024)
    assert _simulate("verilator", tmp_path / "l1v", 1, 256, gamma, beta, runs) > 1000


@pytest.mark.verilator
@pytest.mark.parametrize("params", [{"L": 1, "DMAX": 4, "PDEPTH": 4}, {"L": 1}, {"L": 8},
                                    {"L": 1, "DMAX": 192, "PDEPTH": 500},
                                    {"L": 64, "DMAX": 192, "PDEPTH": 192},
                                    {"L": 32, "DMAX": 1024, "PDEPTH": 2048}])
def test_layernorm_vec_lints_clean(params: dict[str, int]) -> None:
    args = [f"-G{k}={v}" for k, v in params.items()]
    with tool_env("verilator"):
        done = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", TOP, *args,
                               *map(str, SOURCES)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.icarus
@pytest.mark.parametrize("lanes", [32, 1])
def test_layernorm_vec_compiles_on_icarus(lanes: int, tmp_path: Path) -> None:
    done = subprocess.run(["iverilog", "-g2005", "-Wall", "-s", TOP, "-P", f"{TOP}.L={lanes}",
                           "-o", str(tmp_path / "ln"), *map(str, SOURCES)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "warning" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr


@pytest.mark.verilator
@pytest.mark.icarus
@pytest.mark.parametrize("depth", [1, 2, 3, 79, 128])
def test_fifo_lints_clean(depth: int) -> None:
    # vitfpga_fifo alone at the depths it takes: one entry, powers of two (free pointer wrap) and
    # others (wrap by compare; the row buffer's BDW is one). Its behaviour is the units': the
    # runs above pass several buffers' worth of beats through each FIFO.
    with tool_env("verilator"):
        done = subprocess.run(["verilator", "--lint-only", "-Wall", f"-GDEPTH={depth}",
                               "-GWIDTH=5", str(SOURCES[1])],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    icarus = subprocess.run(["iverilog", "-g2005", "-Wall", "-s", "vitfpga_fifo", "-P",
                             f"vitfpga_fifo.DEPTH={depth}", "-o", os.devnull, str(SOURCES[1])],
                            capture_output=True, text=True, timeout=120)
    assert icarus.returncode == 0 and "warning" not in icarus.stderr.lower(), icarus.stderr
