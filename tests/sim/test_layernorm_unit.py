"""`vitfpga_layernorm`: bit-exact with `int_layernorm` on randomised and extreme rows, one element
per cycle at full rate, lint clean under Verilator -Wall, compiling under Icarus.

One Verilator build (DMAX=256, PDEPTH=512) plays every run of a case back to back: the gamma/beta
tables hold regions built by `layernorm_params` (DeiT-Tiny's D=192, the digits model's D=32, a
D=256 one) and a region of extreme words; runs vary D, rows, pbase, (M, S, eps), the rows'
magnitudes, input valid gaps and output backpressure. A small Icarus build (DMAX=16) checks the
small-buffer configuration too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vitfpga.quant.intops import layernorm_params
from vitfpga.runtime.intmath import int_layernorm
from vitfpga.sim.tools import tool_env
from vitfpga.sim.unit import VIT_INCLUDE_DIR, run_unit

SOURCE = VIT_INCLUDE_DIR / "vitfpga_layernorm.v"
TB = "vitfpga.sim.tb.layernorm_tb"
TOP = "vitfpga_layernorm"
# The module header's figures: start -> done = rows*max(d, 16) + d + LATENCY at full rate.
LATENCY = 50
ISQRT_INTERVAL = 16
INT16 = (-(2**15), 2**15 - 1)


def _mem(path: Path, values: np.ndarray, bits: int) -> None:
    digits = bits // 4
    path.write_text("".join(f"{int(v) & ((1 << bits) - 1):0{digits}x}\n" for v in values))


def _row(rng: np.random.Generator, d: int, kind: str) -> np.ndarray:
    """One int16 row of a given character."""
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


KINDS = ("small", "normal", "outlier", "large", "const", "near", "spike", "alt")


def _params(rng: np.random.Generator, d: int, eps: float, in_scale: float, out_scale: float,
            spread: float = 0.3) -> Any:
    gamma = rng.normal(1.0, spread, size=d)
    beta = rng.normal(0.0, spread, size=d)
    return layernorm_params(gamma, beta, eps, in_scale, out_scale)


def _tables(rng: np.random.Generator, pdepth: int,
            regions: list[tuple[int, int, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """gamma (int16) and beta (int32) tables: `layernorm_params` regions at their bases, the
    rest extreme words (full-scale gamma and beta, zeros)."""
    gamma = rng.choice([-32768, -32767, -1, 0, 1, 32767], size=pdepth).astype(np.int64)
    beta = rng.choice([-(2**31), -(2**31) + 1, -1, 0, 1, 2**30, 2**31 - 1],
                      size=pdepth).astype(np.int64)
    for base, d, p in regions:
        gamma[base:base + d] = p.gamma
        beta[base:base + d] = p.beta
    return gamma, beta


def _run(name: str, rng: np.random.Generator, x: np.ndarray, pbase: int, mult: int, shift: int,
         eps: int, *, full_rate: bool = True, in_gap: float = 0.0,
         out_stall: float = 0.0) -> dict[str, Any]:
    rows, d = x.shape
    return {"name": name, "d": int(d), "rows": int(rows), "pbase": int(pbase), "mult": int(mult),
            "shift": int(shift), "eps": int(eps), "x": [int(v) for v in x.reshape(-1)],
            "in_gap": 0.0 if full_rate else in_gap, "out_stall": 0.0 if full_rate else out_stall,
            "full_rate": full_rate, "seed": int(rng.integers(0, 2**31))}


def _rows(rng: np.random.Generator, rows: int, d: int, kinds: tuple[str, ...] = KINDS
          ) -> np.ndarray:
    return np.stack([_row(rng, d, str(rng.choice(kinds))) for _ in range(rows)]) if rows else \
        np.zeros((0, d), dtype=np.int64)


def _big_case(seed: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    deit = _params(rng, 192, 1e-6, 2e-3, 0.05)  # DeiT-Tiny: D=192, eps 1e-6
    digits = _params(rng, 32, 1e-5, 1e-2, 0.03, spread=0.1)  # the digits model: D=32
    wide = _params(rng, 256, 1e-5, 1e-3, 0.1, spread=1.0)
    gamma, beta = _tables(rng, 512, [(0, 192, deit), (192, 32, digits), (224, 256, wide)])
    runs = [
        _run("deit_d192", rng, _rows(rng, 4, 192, ("normal", "outlier")), 0, deit.mult,
             deit.shift, deit.eps),
        _run("digits_d32", rng, _rows(rng, 6, 32, ("normal", "small", "outlier")), 192,
             digits.mult, digits.shift, digits.eps),
        _run("wide_d256", rng, _rows(rng, 3, 256, ("large", "spike", "normal")), 224, wide.mult,
             wide.shift, wide.eps),
        _run("d16", rng, _rows(rng, 6, 16), int(rng.integers(0, 497)), deit.mult, deit.shift,
             deit.eps),
        _run("short_d5", rng, _rows(rng, 6, 5), int(rng.integers(0, 508)), deit.mult,
             deit.shift, deit.eps),
        # Extreme rows: v = eps = 0 (root 1), one huge element, alternating full scale.
        _run("extremes_d64", rng, np.stack([_row(rng, 64, k) for k in
                                            ("spike", "spike", "alt", "alt", "const", "near")]),
             int(rng.integers(0, 449)), wide.mult, wide.shift, 0, full_rate=False, in_gap=0.2,
             out_stall=0.3),
        _run("d1_eps0", rng, _rows(rng, 5, 1), int(rng.integers(0, 512)), digits.mult,
             digits.shift, 0, full_rate=False, out_stall=0.5),
        _run("d1", rng, _rows(rng, 3, 1), 500, deit.mult, deit.shift, 7),
        _run("empty", rng, np.zeros((0, 37), dtype=np.int64), 3, deit.mult, deit.shift, 1),
        # eps at the edge of the exact range, and the contract's 2^40 bound
        _run("eps_2^62-1", rng, _rows(rng, 3, 100, ("large", "alt", "const")), 300, 2**31 - 1,
             40, 2**62 - 1),
        _run("eps_2^40-1", rng, _rows(rng, 2, 77, ("large", "small")), 11, 2**30, 30,
             2**40 - 1, full_rate=False, in_gap=0.4),
        # (M, S) extremes: saturation everywhere, and a shift that leaves only the rounding
        _run("saturate", rng, _rows(rng, 2, 48), 460, 2**31 - 1, 1, 3),
        _run("shift62", rng, _rows(rng, 2, 48), 464, 2**30, 62, 3),
    ]
    # Random shapes: D in 1..256, rows 1..6, random pbase and parameters, some under stress.
    for i in range(6):
        d = int(rng.integers(1, 257))
        p = _params(rng, d, float(10.0 ** rng.uniform(-7, -4)), float(10.0 ** rng.uniform(-4, -1)),
                    float(10.0 ** rng.uniform(-2.5, -0.5)), spread=float(rng.uniform(0.05, 2)))
        stress = i % 2 == 1
        runs.append(_run(f"random{i}_d{d}", rng, _rows(rng, int(rng.integers(1, 7)), d),
                         int(rng.integers(0, 513 - d)), p.mult, p.shift, p.eps,
                         full_rate=not stress, in_gap=0.3, out_stall=0.3))
    return gamma, beta, runs


def _judge(gamma: np.ndarray, beta: np.ndarray, runs: list[dict[str, Any]],
           result: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """Compare every output with int_layernorm; return the count and per run its timing: start
    -> done cycles and, at full rate, the bound they must meet."""
    assert len(result["runs"]) == len(runs)
    compared = 0
    timing = []
    for run, got in zip(runs, result["runs"], strict=True):
        d, rows, pb = run["d"], run["rows"], run["pbase"]
        where = f"run {run['name']} (d={d}, rows={rows}, pbase={pb})"
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
        # rows = 0 raises done at the start edge itself.
        bound = rows * max(d, ISQRT_INTERVAL) + d + LATENCY if rows else 0
        if run["full_rate"]:
            assert rows * d <= got["cycles"] <= bound, f"{where}: {got['cycles']} > {bound}"
        timing.append({"name": run["name"], "d": d, "rows": rows, "cycles": got["cycles"],
                       "full_rate": run["full_rate"], "bound": bound if run["full_rate"] else None})
    return compared, timing


def _simulate(sim: str, build: Path, dmax: int, gamma: np.ndarray, beta: np.ndarray,
              runs: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    build.mkdir(parents=True, exist_ok=True)
    _mem(build / "ln_gamma.mem", gamma, 16)
    _mem(build / "ln_beta.mem", beta, 32)
    # String parameters reach the simulator's -G / -P quoted.
    params: dict[str, int | str] = {
        "DMAX": dmax, "PDEPTH": gamma.size, "GAMMA_FILE": f'"{build / "ln_gamma.mem"}"',
        "BETA_FILE": f'"{build / "ln_beta.mem"}"'}
    result = run_unit(toplevel=TOP, sources=[SOURCE], test_module=TB, parameters=params,
                      case={"runs": runs}, build_dir=build, sim=sim)
    compared, timing = _judge(gamma, beta, runs, result)
    (build / "cycles.json").write_text(json.dumps(timing, indent=1))
    for t in timing:
        print(f"{sim} {t['name']}: d={t['d']} rows={t['rows']} start->done {t['cycles']} cycles "
              f"(rows*d = {t['rows'] * t['d']}"
              + (f", full-rate bound {t['bound']})" if t["full_rate"] else ", stalled)"))
    assert compared > 0
    return compared, timing


@pytest.mark.verilator
def test_layernorm_matches_int_layernorm_on_verilator(tmp_path: Path) -> None:
    gamma, beta, runs = _big_case(seed=2024)
    compared, timing = _simulate("verilator", tmp_path / "verilator", 256, gamma, beta, runs)
    assert compared == sum(r["rows"] * r["d"] for r in runs) > 2000
    # Full rate with d >= 16 meets the header's figure exactly: rows*d + d + LATENCY.
    exact = [(t["name"], t["cycles"], t["rows"] * t["d"] + t["d"] + LATENCY) for t in timing
             if t["full_rate"] and t["rows"] and t["d"] >= ISQRT_INTERVAL]
    assert len(exact) >= 6
    assert all(c == want for _, c, want in exact), exact


@pytest.mark.icarus
def test_layernorm_small_dmax_on_icarus(tmp_path: Path) -> None:
    # DMAX=16: the narrowest widths and a buffer of DMAX + 32 words; d = DMAX at full rate.
    rng = np.random.default_rng(7)
    p = _params(rng, 16, 1e-6, 1e-3, 0.05)
    gamma, beta = _tables(rng, 24, [(0, 16, p)])
    runs = [
        _run("d16", rng, _rows(rng, 4, 16), 0, p.mult, p.shift, p.eps),
        _run("extremes_d16", rng, np.stack([_row(rng, 16, k) for k in ("spike", "alt", "const")]),
             8, p.mult, p.shift, 0, full_rate=False, in_gap=0.3, out_stall=0.3),
        _run("d3", rng, _rows(rng, 3, 3), 21, p.mult, p.shift, p.eps),
    ]
    _simulate("icarus", tmp_path / "icarus", 16, gamma, beta, runs)


@pytest.mark.verilator
@pytest.mark.parametrize("params", [{}, {"DMAX": 192, "PDEPTH": 500}, {"DMAX": 1024,
                                                                         "PDEPTH": 1024}])
def test_layernorm_lints_clean(params: dict[str, int]) -> None:
    args = [f"-G{k}={v}" for k, v in params.items()]
    with tool_env("verilator"):
        done = subprocess.run(["verilator", "--lint-only", "-Wall", *args, str(SOURCE)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.icarus
def test_layernorm_compiles_on_icarus(tmp_path: Path) -> None:
    done = subprocess.run(["iverilog", "-g2005", "-Wall", "-s", TOP, "-o", str(tmp_path / "ln"),
                           str(SOURCE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "warning" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
