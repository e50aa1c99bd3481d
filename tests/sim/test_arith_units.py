"""The pipelined arithmetic units `vitfpga_requant` (the engine's requantisation) and
`vitfpga_rescale_add` (the residual add, one lane): bit-exact with `requantize` and `int_add`,
results exactly LAT enabled clocks after their inputs (LAT read from each module's header),
outputs held while `en` is low, MARGIN levels under the logic-depth budget on xc7 and xcup.

One Verilator build of a wrapper holding both units (`sim/tb/arith_tb.py`) plays every beat:
the inputs' extremes crossed, results on exact rounding ties and at both sides of each clamp,
huge residual terms that cancel, and random beats, with `en` low at random. Icarus compiles both
units and plays a shorter stream (a second reading of the Verilog); Verilator lints each -Wall.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vitfpga.hls.plan.timing import LEVEL_BUDGET, level_budget
from vitfpga.runtime.intmath import int_add, requantize, round_shift
from vitfpga.sim.depth import logic_depth
from vitfpga.sim.tb.arith_tb import PAIR_TOP, PAIR_VERILOG
from vitfpga.sim.tools import tool_env
from vitfpga.sim.unit import INCLUDE_DIR, run_unit

RQ = INCLUDE_DIR / "vitfpga_requant.v"
RA = INCLUDE_DIR / "vitfpga_rescale_add.v"
TB = "vitfpga.sim.tb.arith_tb"
I32 = (-(2**31), 2**31 - 1)
M_EDGES = (2**30, 2**30 + 1, 2**31 - 1)
S_EDGES = (1, 2, 31, 32, 61, 62)
# Levels each unit keeps under the family's budget: inside a larger flattened design ABC maps the
# same logic up to two levels deeper than it does the units alone.
MARGIN = {"xcup": 2, "xc7": 2}


def latency(source: Path) -> int:
    """The module's `localparam integer LAT`, the figure its header states."""
    found = re.findall(r"localparam integer LAT = (\d+);", source.read_text())
    assert len(found) == 1, f"{source.name}: one LAT localparam expected"
    return int(found[0])


# --- stimulus ------------------------------------------------------------------------------------


def _rq_targets(rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """(acc, M, S, relu) whose rounded result sits on a tie or next to a clamp edge."""
    rows: list[tuple[int, int, int, int]] = []
    # Ties: M = c*2^j, c odd, acc = m*2^(S-1-j) with m odd: acc*M / 2^S = c*m/2 exactly.
    for _ in range(160):
        j = int(rng.integers(22, 31))
        c = int(rng.integers(2**(30 - j), 2**(31 - j))) | 1  # 2^(31-j) - 1 is odd: c stays below
        m = int(rng.integers(-300 // c - 1, 300 // c + 2)) | 1
        s = int(rng.integers(j + 1, min(62, j + 24) + 1))
        acc = m << (s - 1 - j)
        if I32[0] <= acc <= I32[1]:
            rows.append((acc, c << j, s, int(rng.integers(2))))
    # Just either side of each clamp edge and of zero: acc*M/2^S near -129.5 .. 128.
    for target in (-129.5, -128.5, -128, -127.5, -1, -0.5, 0, 0.5, 126.5, 127, 127.5, 128):
        for _ in range(6):
            mult = int(rng.integers(2**30, 2**31))
            s = int(rng.integers(31, 63))
            base = int(target * 2**s // mult)
            for delta in (-1, 0, 1):
                acc = int(np.clip(base + delta, *I32))
                rows.append((acc, mult, s, int(rng.integers(2))))
    return rows


def requant_beats(rng: np.random.Generator, n_random: int) -> dict[str, list[int]]:
    """(acc, mult, shift, relu) beats: extremes crossed, ties, clamp edges, random."""
    accs = (*I32, 0, 1, -1, 2**16, -(2**17))
    grid = [(acc, m, s, r) for acc, m, s, r in
            itertools.product(accs, M_EDGES, (*S_EDGES, 17, 18, 40), (0, 1))]
    rand = []
    for _ in range(n_random):
        width = int(rng.integers(1, 33))  # log-uniform magnitude, so every S matters
        acc = int(rng.integers(-(2**(width - 1)), 2**(width - 1)))
        near = rng.random() < 0.5  # a shift that keeps the result near int8
        s = int(np.clip(width + 30 - int(rng.integers(6, 10)), 1, 62)) if near else \
            int(rng.integers(1, 63))
        rand.append((acc, int(rng.integers(2**30, 2**31)), s, int(rng.integers(2))))
    rows = grid + _rq_targets(rng) + rand
    order = rng.permutation(len(rows))
    cols = list(zip(*[rows[i] for i in order], strict=True))
    return {"acc": [v & 0xFFFFFFFF for v in cols[0]], "mult": list(cols[1]),
            "shift": list(cols[2]), "relu": list(cols[3])}


def _ra_cancel(rng: np.random.Generator) -> tuple[int, int, int, int, int, int]:
    """A beat whose two terms are huge (up to 2^37) and nearly cancel."""
    a = int(rng.choice([-128, 127, int(rng.integers(-128, 128))])) or 1
    m0, s0 = int(rng.integers(2**30, 2**31)), int(rng.integers(1, 13))
    ra = int(round_shift(a, m0, s0))
    x = int(rng.integers(2**10, 2**15)) * (-1 if ra > 0 else 1)
    want = -ra + int(rng.integers(-40000, 40001))  # the x term sought, ~ -ra
    s1 = 30 - int(np.floor(np.log2(max(abs(want / x), 1e-9))))
    m1 = round(want * 2**s1 / x)
    if not (2**30 <= m1 < 2**31 and 1 <= s1 <= 62):
        return (a, x, m0, 2**30, s0, 1)  # a plain huge sum instead
    return (a, x, m0, m1, s0, s1)


def _ra_edges(rng: np.random.Generator) -> list[tuple[int, int, int, int, int, int]]:
    """Sums at both sides of each saturation edge (terms exact at M = 2^30, S = 30; halves at
    S = 31 round as ties), per-term ties, and cancelling huge terms."""
    rows = []
    for x, da in itertools.product((32767, 32766, -32768, -32767, 0), (-2, -1, 0, 1, 2)):
        rows.append((da, x, 2**30, 2**30, 30, 30))
    for a, x in itertools.product((-128, -3, -1, 1, 3, 127), (-32767, -3, -1, 1, 3, 32767)):
        rows.append((a, x, 2**30, 2**30, 31, 31))  # a/2 + x/2: both terms on a tie
        # v/2^(k+1) is a tie for v an odd multiple of 2^k: ties at larger shifts.
        k = int(rng.integers(1, 7))
        at, xt = ((a >> k) | 1) << k, ((x >> (k + 8)) | 1) << (k + 8)
        rows.append((at, xt, 2**30, 2**30, 31 + k, 39 + k))
        rows.append((a, x, 2**30, 2**30, 29, 29))  # 2a + 2x: saturates near the edges
    rows += [_ra_cancel(rng) for _ in range(150)]
    return rows


def rescale_beats(rng: np.random.Generator, n_random: int) -> dict[str, list[int]]:
    """(a, x, m0, m1, s0, s1) beats: extremes crossed, edges, ties, cancellation, random."""
    grid = [(a, x, m0, m1, s0, s1) for (a, x), (m0, m1), (s0, s1) in itertools.product(
        [(-128, -32768), (127, 32767), (-128, 32767), (0, -1), (1, 0), (-1, 1)],
        [(2**30, 2**31 - 1), (2**31 - 1, 2**30)],
        [(1, 1), (1, 62), (62, 1), (2, 31), (32, 2), (61, 62), (38, 46), (39, 47), (40, 48)])]
    rand = []
    for _ in range(n_random):
        near = rng.random() < 0.6  # shifts that keep the sum near int16
        lo, hi = (22, 40) if near else (1, 63)
        rand.append((int(rng.integers(-128, 128)), int(rng.integers(-2**15, 2**15)),
                     int(rng.integers(2**30, 2**31)), int(rng.integers(2**30, 2**31)),
                     int(rng.integers(lo, hi)), int(rng.integers(lo + 8, hi + 8)) if near
                     else int(rng.integers(lo, hi))))
    rows = grid + _ra_edges(rng) + rand
    order = rng.permutation(len(rows))
    cols = list(zip(*[rows[i] for i in order], strict=True))
    return {"a": [v & 0xFF for v in cols[0]], "x": [v & 0xFFFF for v in cols[1]],
            "m0": list(cols[2]), "m1": list(cols[3]), "s0": list(cols[4]), "s1": list(cols[5])}


def _signed(values: list[int], bits: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.int64)
    return ((v + (1 << (bits - 1))) & ((1 << bits) - 1)) - (1 << (bits - 1))


def golden(beats: dict[str, list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Each beat through the integer golden, one call a beat."""
    acc = _signed(beats["acc"], 32)
    want_rq = np.array([int(requantize(acc[i], beats["mult"][i], beats["shift"][i],
                                       relu=bool(beats["relu"][i])))
                        for i in range(len(acc))])
    a, x = _signed(beats["a"], 8), _signed(beats["x"], 16)
    want_ra = np.array([int(int_add([a[i], x[i]], [[beats["m0"][i], beats["s0"][i]],
                                                   [beats["m1"][i], beats["s1"][i]]], 16))
                        for i in range(len(a))])
    return want_rq, want_ra


def paired_beats(seed: int, n_random: int) -> dict[str, list[int]]:
    """Both units' beats side by side, the shorter list topped up with its random beats."""
    rng = np.random.default_rng(seed)
    rq, ra = requant_beats(rng, n_random), rescale_beats(rng, n_random)
    n_rq, n_ra = len(rq["acc"]), len(ra["a"])
    if n_rq < n_ra:
        extra = requant_beats(np.random.default_rng(seed + 1), n_ra - n_rq)
        rq = {k: (v + extra[k])[:n_ra] for k, v in rq.items()}
    elif n_ra < n_rq:
        extra = rescale_beats(np.random.default_rng(seed + 1), n_rq - n_ra)
        ra = {k: (v + extra[k])[:n_rq] for k, v in ra.items()}
    return {**rq, **ra}


# --- simulation ----------------------------------------------------------------------------------


def _simulate(sim: str, build: Path, beats: dict[str, list[int]],
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Play `beats` through both units with `en` low a third of the time; compare every result
    with the golden at exactly LAT enabled edges; return the golden results compared."""
    lat_rq, lat_ra = latency(RQ), latency(RA)
    build.mkdir(parents=True, exist_ok=True)
    pair = build / f"{PAIR_TOP}.v"
    pair.write_text(PAIR_VERILOG)
    case = {"beats": beats, "stall": 0.35, "seed": seed, "drain": max(lat_rq, lat_ra)}
    result = run_unit(toplevel=PAIR_TOP, sources=[RQ, RA, pair], test_module=TB, parameters={},
                      case=case, build_dir=build, sim=sim)
    assert result["errors"] == [], result["errors"][:5]
    count = len(beats["acc"])
    assert result["edges"] == count + case["drain"]
    assert result["cycles"] > result["edges"] * 1.3  # en was low often enough to matter
    want_rq, want_ra = golden(beats)
    # Beat j is taken by enabled edge j+1 and leaves after edge j+LAT: list index j+LAT-1.
    for name, want, lat, bits in (("y_rq", want_rq, lat_rq, 8), ("y_ra", want_ra, lat_ra, 16)):
        seen = result["seen"][name][lat - 1:lat - 1 + count]
        assert None not in seen, f"{name}: X after the pipeline filled"
        got = _signed(seen, bits)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{sim} {name}: {bad.size} of {count} wrong, first beat "
                               f"{bad[0]}: {({k: v[bad[0]] for k, v in beats.items()})} gave "
                               f"{got[bad[0]]}, want {want[bad[0]]}")
    return want_rq, want_ra


def test_stimulus_reaches_the_cases_it_names() -> None:
    # The tie and cancellation generators must produce what their names say, or the RTL run
    # would prove less than it claims.
    beats = paired_beats(seed=7, n_random=50)
    acc = _signed(beats["acc"], 32)
    mult, shift = np.asarray(beats["mult"]), np.asarray(beats["shift"])
    prod = [int(acc[i]) * int(mult[i]) for i in range(len(acc))]
    ties = [i for i, p in enumerate(prod) if p % (1 << int(shift[i])) == 1 << int(shift[i] - 1)]
    in_range_ties = [i for i in ties if -129 < prod[i] / 2.0 ** int(shift[i]) < 128]
    assert len(in_range_ties) > 100
    a, x = _signed(beats["a"], 8), _signed(beats["x"], 16)
    terms = [(int(round_shift(a[i], beats["m0"][i], beats["s0"][i])),
              int(round_shift(x[i], beats["m1"][i], beats["s1"][i]))) for i in range(len(a))]
    cancel = [t for t in terms if min(abs(t[0]), abs(t[1])) > 2**20 and abs(sum(t)) < 2**15]
    assert len(cancel) > 50
    assert any(abs(t[1]) > 2**38 for t in terms)  # the x term's clamp is taken


@pytest.mark.verilator
def test_units_match_the_golden_on_verilator(tmp_path: Path) -> None:
    # The build is most of the cost (about 40 s); the 2,000-odd beats take 2 s.
    beats = paired_beats(seed=2022, n_random=1500)
    want_rq, want_ra = _simulate("verilator", tmp_path / "verilator", beats, seed=1)
    # Both clamps and much of the unclamped range were reached.
    assert {-128, 0, 127} <= set(want_rq.tolist()) and len(set(want_rq.tolist())) > 150
    assert {-32768, 32767} <= set(want_ra.tolist()) and len(set(want_ra.tolist())) > 800


@pytest.mark.icarus
def test_units_match_the_golden_on_icarus(tmp_path: Path) -> None:
    # Four-state: also no X once the pipeline has filled. A short stream (Icarus runs about
    # 150 clocks a second under cocotb here).
    beats = {k: v[:150] for k, v in paired_beats(seed=11, n_random=0).items()}
    want_rq, want_ra = _simulate("icarus", tmp_path / "icarus", beats, seed=2)
    assert len(set(want_rq.tolist())) > 20 and len(set(want_ra.tolist())) > 50


@pytest.mark.verilator
@pytest.mark.parametrize("source", [RQ, RA], ids=lambda p: p.stem)
def test_unit_lints_clean(source: Path) -> None:
    with tool_env("verilator"):
        done = subprocess.run(["verilator", "--lint-only", "-Wall", str(source)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.icarus
@pytest.mark.parametrize("source", [RQ, RA], ids=lambda p: p.stem)
def test_unit_compiles_on_icarus(tmp_path: Path, source: Path) -> None:
    done = subprocess.run(["iverilog", "-g2005", "-Wall", "-o", str(tmp_path / "u"),
                           str(source)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "warning" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr


# --- logic depth ---------------------------------------------------------------------------------


@pytest.mark.yosys
@pytest.mark.parametrize("family", sorted({f for f, _ in LEVEL_BUDGET}))
def test_units_fit_the_level_budget_with_margin(tmp_path: Path, family: str) -> None:
    # Both units in one netlist, one synthesis a family: ABC lets every path grow to the
    # netlist's deepest, so the pair maps as deep as its deeper unit alone, or deeper.
    mhz = next(m for f, m in LEVEL_BUDGET if f == family)
    budget = level_budget(family, mhz) - MARGIN[family]
    pair = tmp_path / f"{PAIR_TOP}.v"
    pair.write_text(PAIR_VERILOG)
    build = tmp_path / "build"
    r = logic_depth([RQ, RA, pair], PAIR_TOP, family, build)
    print(f"{family}: {r.levels} levels (budget {budget} with the margin): {r.composition()}; "
          f"{r.route()}; ends {r.endpoints}")
    assert r.levels <= budget, r.route()
    assert not r.unknown
    assert r.cells.get("DSP48E1" if family == "xc7" else "DSP48E2") == 8  # 4 a unit
