"""The packed multipliers of `vitfpga_mulpack.v` (two int8 products per DSP48E2 / DSP48E1, three
<= 4-bit weight products per DSP48E2): bit-exact against plain Python products.

Coverage: the Verilator sweep checks every (a0, a1, b) int8 triple (2^24) through
`vitfpga_mul2x8` at SHIFT 18 and at SHIFT 16, and every (w0, w1, w2, x) (2^20) through
`vitfpga_mul3x4` at 4 bits. Icarus streams edge values (the int8 / intW extremes, -1, 0, 1) and
random beats through `vitfpga_dot2x8` (N at the bound of its SHIFT, the unpacked fallback), the
other weight widths and latencies, with `ce` and `in_valid` low at random, and checks the
latency in ce-qualified cycles. The packing's arithmetic itself (the header's proof) is checked
in numpy over all inputs, including that one term past the bound breaks it. Yosys counts DSPs and
LUTs on a 16-instance wrapper per family.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vitfpga.sim.synth import synthesize
from vitfpga.sim.tb.mulpack_tb import SWEEP_MAIN, SWEEP_TOP, SWEEP_VERILOG
from vitfpga.sim.tools import tool_env
from vitfpga.sim.unit import INCLUDE_DIR, run_unit

SOURCE = INCLUDE_DIR / "vitfpga_mulpack.v"
SOURCES = [SOURCE]  # self-contained: the lane sum is its own pipelined tree
TB = "vitfpga.sim.tb.mulpack_tb"
INT8_EDGES = (-128, -127, -1, 0, 1, 126, 127)


# --- the packed arithmetic, as the RTL computes it (the planner may use these bounds) ----------


def dot2x8_max_terms(shift: int) -> int:
    """Most int8 products one packed sum holds exactly: 32640*N < 2^shift."""
    return ((1 << shift) - 1) // 32640


def dot2x8_offset(n: int, shift: int) -> int:
    """The constant K that keeps the low field in [0, 2^shift) for n terms."""
    half = 1 << (shift - 1)
    return half if 16384 * n < half else 16256 * n


def packed_dot2x8(a0: np.ndarray, a1: np.ndarray, b: np.ndarray, shift: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(s0, s1) from one packed sum over the last axis: P = sum((a1 << shift) + a0)*b + K."""
    k = dot2x8_offset(a0.shape[-1], shift)
    p = (((a1 << shift) + a0) * b).sum(axis=-1) + k
    return (p & ((1 << shift) - 1)) - k, p >> shift


def packed_mul3x4(w: np.ndarray, x: np.ndarray, wbits: int) -> np.ndarray:
    """The three products w[..., i]*x from one packed product, fields F = wbits + 7 wide."""
    f = wbits + 7
    k0 = 127 << (wbits - 1)
    mask = (1 << f) - 1
    p = (w[..., 0] + (w[..., 1] << f) + (w[..., 2] << (2 * f))) * x + k0 + (k0 << f)
    return np.stack([(p & mask) - k0, ((p >> f) & mask) - k0, p >> (2 * f)], axis=-1)


def _signed(v: np.ndarray | int, bits: int) -> Any:
    return ((np.asarray(v, dtype=np.int64) + (1 << (bits - 1))) & ((1 << bits) - 1)) \
        - (1 << (bits - 1))


def test_packing_arithmetic_is_exact_and_its_bound_tight() -> None:
    i8 = np.arange(-128, 128, dtype=np.int64)
    a0, b = (v.reshape(-1, 1) for v in np.meshgrid(i8, i8, indexing="ij"))
    for shift in (16, 17, 18):
        for a1v in range(-128, 128):  # every triple, one a1 at a time
            a1 = np.full_like(a0, a1v)
            s0, s1 = packed_dot2x8(a0, a1, b, shift)
            assert np.array_equal(s0, (a0 * b)[:, 0]) and np.array_equal(s1, (a1 * b)[:, 0])
    assert [dot2x8_max_terms(s) for s in (16, 17, 18)] == [2, 4, 8]
    rng = np.random.default_rng(5)
    for shift in (16, 17, 18):
        n = dot2x8_max_terms(shift)
        # The extremes of both sums at n terms, and random rows: exact.
        ext = np.array([[-128, 127, -128], [127, -128, -128], [-128, -128, -128],
                        [127, 127, -128], [-128, 127, 127], [127, -128, 127]])
        rows = np.concatenate([np.repeat(ext[:, None, :], n, axis=1),
                               rng.integers(-128, 128, size=(4000, n, 3))])
        s0, s1 = packed_dot2x8(rows[..., 0], rows[..., 1], rows[..., 2], shift)
        assert np.array_equal(s0, (rows[..., 0] * rows[..., 2]).sum(-1))
        assert np.array_equal(s1, (rows[..., 1] * rows[..., 2]).sum(-1))
        # One term more: some extreme row breaks whatever K is chosen.
        big = np.repeat(ext[:, None, :], n + 1, axis=1)
        for k in (16256 * (n + 1), 1 << (shift - 1)):
            low = (big[..., 0] * big[..., 2]).sum(-1) + k
            assert ((low < 0) | (low >= 1 << shift)).any()
    for wbits in (1, 2, 3, 4):
        iw = np.arange(-(1 << (wbits - 1)), 1 << (wbits - 1), dtype=np.int64)
        grid = np.stack(np.meshgrid(iw, iw, iw, i8, indexing="ij"), -1).reshape(-1, 4)
        got = packed_mul3x4(grid[:, :3], grid[:, 3], wbits)
        assert np.array_equal(got, grid[:, :3] * grid[:, 3:4])


# --- RTL: the exhaustive sweep -----------------------------------------------------------------


def _run_sweep(tmp_path: Path) -> dict[str, Path]:
    """Build the sweep with a plain Verilator main, run it, return the banks' files."""
    (tmp_path / "sweep.v").write_text(SWEEP_VERILOG)
    (tmp_path / "main.cpp").write_text(SWEEP_MAIN)
    files = {k: tmp_path / f"bank_{k}.bin" for k in "abc"}
    args = [f'-GFILE_{k.upper()}="{p}"' for k, p in files.items()]
    with tool_env("verilator"):
        build = subprocess.run(
            ["verilator", "--cc", "--exe", "--build", "-j", "2", "-Wno-fatal", "-MAKEFLAGS",
             "OPT_FAST=-O1 OPT_SLOW=-O0 OPT_GLOBAL=-O0", "--top-module", SWEEP_TOP, *args,
             "--Mdir", str(tmp_path / "obj"), "-o", "sweep",
             str(tmp_path / "sweep.v"), *map(str, SOURCES), str(tmp_path / "main.cpp")],
            capture_output=True, text=True, timeout=600)
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        run = subprocess.run([str(tmp_path / "obj" / "sweep")], capture_output=True, text=True,
                             timeout=600)
    assert run.returncode == 0, f"the sweep did not finish: {run.stdout[-2000:]}"
    return files


@pytest.mark.verilator
def test_mulpack_exhaustive_on_verilator(tmp_path: Path) -> None:
    files = _run_sweep(tmp_path)
    i8 = _signed(np.arange(256), 8)
    t = np.arange(1 << 24)
    for bank in "ab":  # SHIFT 18 and SHIFT 16: all 2^24 triples
        rec = np.fromfile(files[bank], dtype="<i2")
        files[bank].unlink()  # 64 MiB each
        assert rec.size == (1 << 20) * 32, f"bank {bank}: {rec.size // 32} records"
        rec = rec.reshape(1 << 20, 2, 16)
        b = i8[(t >> 8) & 255]
        for k, a in ((0, i8[t & 255]), (1, i8[t >> 16])):
            got = rec[:, k, :].reshape(-1).astype(np.int64)
            want = a * b
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, (f"bank {bank} p{k}: {bad.size} wrong, first (a0, a1, b) = "
                                   f"{(i8[bad[0] & 255], i8[bad[0] >> 16], b[bad[0]])}: "
                                   f"{got[bad[0]]} != {want[bad[0]]}")
    rec = np.fromfile(files["c"], dtype="<i2")
    assert rec.size == (1 << 16) * 48, f"bank c: {rec.size // 48} records"
    got = rec.reshape(1 << 20, 3).astype(np.int64)
    t = np.arange(1 << 20)
    i4 = _signed(np.arange(16), 4)
    w = np.stack([i4[t & 15], i4[(t >> 4) & 15], i4[(t >> 8) & 15]], -1)
    want = w * i8[t >> 12][:, None]
    bad = np.flatnonzero((got != want).any(-1))
    assert bad.size == 0, (f"mul3x4: {bad.size} inputs wrong, first w={w[bad[0]]} "
                           f"x={i8[bad[0] >> 12]}: {got[bad[0]]} != {want[bad[0]]}")


# --- RTL: streams with stalls, on Icarus -------------------------------------------------------


def _lanes(values: np.ndarray, bits: int) -> list[int]:
    """Rows of signed lane values packed into one unsigned word each, lane 0 lowest."""
    words = []
    for row in np.atleast_2d(values):
        word = 0
        for i, v in enumerate(row):
            word |= (int(v) & ((1 << bits) - 1)) << (i * bits)
        words.append(word)
    return words


def _int8_rows(rng: np.random.Generator, n: int, rows: int) -> np.ndarray:
    """(rows, n, 3) int8 (a0, a1, b) triples: every lane at the same extreme, mixed extremes,
    then uniform random."""
    ext = np.array([[-128, 127, -128], [127, -128, -128], [-128, -128, -128], [127, 127, -128],
                    [-128, 127, 127], [127, -128, 127], [0, 0, 0], [-1, 1, -1]])
    same = np.repeat(ext[:, None, :], n, axis=1)
    mixed = rng.choice(INT8_EDGES, size=(rows // 2, n, 3))
    return np.concatenate([same, mixed, rng.integers(-128, 128, size=(rows // 2, n, 3))])


def dot2x8_latency(n: int, latency: int) -> int:
    """vitfpga_dot2x8's cycles from in to out: LATENCY plus one register per lane-sum level."""
    return latency + (n - 1).bit_length()


def _stream(tmp_path: Path, top: str, params: dict[str, int], beats: dict[str, list[int]],
            outputs: list[str], seed: int, latency: int) -> dict[str, Any]:
    case = {"mode": "stream", "seed": seed, "beats": beats, "outputs": outputs,
            "stall": 0.25, "gap": 0.2, "drain": latency + 3}
    build = tmp_path / "_".join([top, *(f"{k}{v}" for k, v in params.items())])
    result = run_unit(toplevel=top, sources=SOURCES, test_module=TB, parameters=params,
                      case=case, build_dir=build, sim="icarus")
    count = len(next(iter(beats.values())))
    assert len(result["taken"]) == count
    # Beat k, taken by ce-qualified edge t, leaves the last register at edge t + latency - 1
    # (seen `latency` cycles after it was offered), and nothing else comes out.
    assert [s["edge"] for s in result["seen"]] == [t + latency - 1 for t in result["taken"]]
    return result


@pytest.mark.icarus
@pytest.mark.parametrize(("n", "shift", "latency"), [(8, 18, 3), (2, 16, 4), (5, 0, 1),
                                                     (1, 17, 2)])
def test_dot2x8_streams_exactly_on_icarus(tmp_path: Path, n: int, shift: int,
                                          latency: int) -> None:
    rng = np.random.default_rng(n * 100 + shift)
    rows = _int8_rows(rng, n, 200)
    beats = {name: _lanes(rows[..., j], 8) for j, name in enumerate(("a0", "a1", "b"))}
    params = {"N": n, "SHIFT": shift, "LATENCY": latency}
    result = _stream(tmp_path, "vitfpga_dot2x8", params, beats, ["s0", "s1"], seed=n,
                     latency=dot2x8_latency(n, latency))
    got = np.array([[_signed(s["s0"], 32), _signed(s["s1"], 32)] for s in result["seen"]])
    want = np.stack([(rows[..., 0] * rows[..., 2]).sum(-1),
                     (rows[..., 1] * rows[..., 2]).sum(-1)], -1)
    assert np.abs(want).max() == 16384 * n  # the extreme sum was among the beats
    bad = np.flatnonzero((got != want).any(-1))
    assert bad.size == 0, f"{bad.size} wrong sums, first row {rows[bad[0]].tolist()}: " \
                          f"{got[bad[0]]} != {want[bad[0]]}"


@pytest.mark.icarus
@pytest.mark.parametrize(("top", "params"), [
    ("vitfpga_mul3x4", {"WBITS": 2, "LATENCY": 1}),
    ("vitfpga_mul3x4", {"WBITS": 3, "LATENCY": 2}),
    ("vitfpga_mul2x8", {"SHIFT": 0, "LATENCY": 4}),
    ("vitfpga_mul2x8", {"SHIFT": 18, "LATENCY": 1})])
def test_products_stream_exactly_on_icarus(tmp_path: Path, top: str,
                                           params: dict[str, int]) -> None:
    rng = np.random.default_rng(len(top) + params["LATENCY"])
    if top == "vitfpga_mul3x4":
        wb = params["WBITS"]
        lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
        edges = [lo, -1, 0, 1, hi] if wb > 1 else [-1, 0]
        grid = np.stack(np.meshgrid(edges, edges, edges, INT8_EDGES, indexing="ij"),
                        -1).reshape(-1, 4)
        rand = np.concatenate([rng.integers(lo, hi + 1, size=(400, 3)),
                               rng.integers(-128, 128, size=(400, 1))], -1)
        ins = np.concatenate([grid, rand])
        beats = {"w": _lanes(ins[:, :3], wb), "x": _lanes(ins[:, 3:], 8)}
        outs, pw = ["p"], wb + 8
        want = ins[:, :3] * ins[:, 3:]
    else:
        ins = _int8_rows(rng, 1, 800)[:, 0, :]
        beats = {k: _lanes(ins[:, j:j + 1], 8) for j, k in enumerate(("a0", "a1", "b"))}
        outs, pw = ["p0", "p1"], 16
        want = ins[:, :2] * ins[:, 2:]
    result = _stream(tmp_path, top, params, beats, outs, seed=7, latency=params["LATENCY"])
    if top == "vitfpga_mul3x4":
        got = np.array([[_signed(s["p"] >> (i * pw), pw) for i in range(3)]
                        for s in result["seen"]])
    else:
        got = np.array([[_signed(s[o], 16) for o in outs] for s in result["seen"]])
    bad = np.flatnonzero((got != want).any(-1))
    assert bad.size == 0, f"{bad.size} wrong, first inputs {ins[bad[0]]}: {got[bad[0]]} != " \
                          f"{want[bad[0]]}"


# --- lint, compile, synthesis ------------------------------------------------------------------

LINT = [("vitfpga_mul2x8", {}), ("vitfpga_mul2x8", {"SHIFT": 16, "LATENCY": 1}),
        ("vitfpga_mul2x8", {"SHIFT": 0, "LATENCY": 4}), ("vitfpga_dot2x8", {}),
        ("vitfpga_dot2x8", {"N": 1, "LATENCY": 2}), ("vitfpga_dot2x8", {"N": 2, "SHIFT": 16}),
        ("vitfpga_dot2x8", {"N": 16, "SHIFT": 0}), ("vitfpga_mul3x4", {}),
        ("vitfpga_mul3x4", {"WBITS": 1, "LATENCY": 4})]


@pytest.mark.verilator
@pytest.mark.parametrize(("top", "params"), LINT)
def test_mulpack_lints_clean(top: str, params: dict[str, int]) -> None:
    args = [f"-G{k}={v}" for k, v in params.items()]
    with tool_env("verilator"):
        done = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top, *args,
                               *map(str, SOURCES)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.verilator
@pytest.mark.parametrize("params", [{"N": 9}, {"N": 3, "SHIFT": 16}, {"SHIFT": 20},
                                    {"LATENCY": 5}])
def test_dot2x8_refuses_parameters_past_the_bound(params: dict[str, int]) -> None:
    args = [f"-G{k}={v}" for k, v in params.items()]
    with tool_env("verilator"):
        done = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module",
                               "vitfpga_dot2x8", *args, *map(str, SOURCES)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "parameters_out_of_range" in done.stderr


@pytest.mark.icarus
@pytest.mark.parametrize("top", ["vitfpga_mul2x8", "vitfpga_dot2x8", "vitfpga_mul3x4"])
def test_mulpack_compiles_on_icarus(tmp_path: Path, top: str) -> None:
    done = subprocess.run(["iverilog", "-g2005", "-Wall", "-s", top, "-o", str(tmp_path / "m"),
                           *map(str, SOURCES)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "warning" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr


SYNTH_TOP = """\
module mulpack_top (
    input  wire         clk,
    input  wire         rst_n,
    input  wire         ce,
    input  wire         in_valid,
    input  wire [127:0] a0,
    input  wire [127:0] a1,
    input  wire [127:0] b,
    output wire [15:0]  out_valid,
    output wire [255:0] p0,
    output wire [255:0] p1
);
    genvar i;
    generate
        for (i = 0; i < 16; i = i + 1) begin : g
            vitfpga_mul2x8 #(.SHIFT({shift}), .LATENCY(3)) u (
                .clk(clk), .rst_n(rst_n), .ce(ce), .in_valid(in_valid), .a0(a0[i*8 +: 8]),
                .a1(a1[i*8 +: 8]), .b(b[i*8 +: 8]), .out_valid(out_valid[i]),
                .p0(p0[i*16 +: 16]), .p1(p1[i*16 +: 16]));
        end
    endgenerate
endmodule
"""


@pytest.mark.yosys
@pytest.mark.parametrize(("family", "shift", "primitive", "max_lut"), [
    ("xcup", 18, "DSP48E2", 16 * 9 + 1), ("xc7", 16, "DSP48E1", 16 + 1)])
def test_mul2x8_takes_one_dsp_per_pair_in_yosys(tmp_path: Path, family: str, shift: int,
                                                primitive: str, max_lut: int) -> None:
    # 32 products from 16 DSPs. xcup: Yosys packs nothing into a DSP48E2 beyond the multiply,
    # so the pre-adder is 8 LUTs a pair and K one inverter (carry chain); xc7: pre-adder, K and
    # registers go into the DSP48E1, one inverter a pair flips p0's bit 15 (K = 2^15).
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    for src in SOURCES:
        (rtl / src.name).write_text(src.read_text())
    (rtl / "mulpack_top.v").write_text(SYNTH_TOP.replace("{shift}", str(shift)))
    report = synthesize(rtl, tmp_path / "build", top="mulpack_top", family=family)
    assert report.dsp == report.cells.get(primitive) == 16
    assert 0 < report.lut <= max_lut, report.cells
