"""`vitfpga_lutmul`, the LUT-only low-bit multiplier: exhaustive against Python on Icarus, lint
clean under Verilator -Wall, and free of DSPs under Yosys synth_xilinx."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vitfpga.sim.synth import synthesize
from vitfpga.sim.tools import tool_env

SOURCE = Path(__file__).resolve().parents[2] / "templates" / "rtl" / "include" / "vitfpga_lutmul.v"

# Every (w, x) pair in a fixed order; the bench prints one product per line.
BENCH = """\
`timescale 1ns/1ps
module tb;
    localparam integer WBITS = {wbits};
    reg  [WBITS-1:0] w;
    reg  [7:0]       x;
    wire [WBITS+7:0] p;
    integer i, j;
    vitfpga_lutmul #(.WBITS(WBITS)) dut (.w(w), .x(x), .p(p));
    initial begin
        for (i = 0; i < (1 << WBITS); i = i + 1) begin
            for (j = 0; j < 256; j = j + 1) begin
                w = i;
                x = j;
                #1 $display("%0d %0d %0d", i, j, p);
            end
        end
        $finish;
    end
endmodule
"""


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


@pytest.mark.icarus
@pytest.mark.parametrize("wbits", [2, 3, 4, 8])
def test_lutmul_exhaustive_on_icarus(wbits: int, tmp_path: Path) -> None:
    bench = tmp_path / "tb.v"
    bench.write_text(BENCH.format(wbits=wbits))
    sim = tmp_path / "tb.vvp"
    subprocess.run(["iverilog", "-g2005", "-Wall", "-s", "tb", "-o", str(sim), str(bench),
                    str(SOURCE)], check=True, capture_output=True, text=True, timeout=120)
    out = subprocess.run(["vvp", "-n", str(sim)], check=True, capture_output=True, text=True,
                         timeout=300).stdout
    rows = [tuple(map(int, line.split())) for line in out.splitlines()
            if line and line[0].isdigit()]
    assert len(rows) == (1 << wbits) * 256  # every pair compared, none skipped
    pw = wbits + 8
    wrong = [(w, x, p) for w, x, p in rows
             if _signed(p, pw) != _signed(w, wbits) * _signed(x, 8)]
    assert not wrong, f"{len(wrong)} wrong products, first (w, x, p): {wrong[:5]}"


@pytest.mark.verilator
@pytest.mark.parametrize("wbits", [1, 2, 3, 4, 8])
def test_lutmul_lints_clean(wbits: int) -> None:
    with tool_env("verilator"):
        done = subprocess.run(["verilator", "--lint-only", "-Wall", f"-GWBITS={wbits}",
                               str(SOURCE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.yosys
def test_lutmul_uses_no_dsp_in_yosys(tmp_path: Path) -> None:
    # Yosys maps a plain `w * x` of these widths onto a DSP48 whatever its use_dsp attribute says;
    # the hand-built product must stay in LUTs and carry chains (42 LUTs at 4 bits in Yosys 0.70).
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    shutil.copy2(SOURCE, rtl)
    (rtl / "lutmul_top.v").write_text("""\
module lutmul_top (
    input  wire        clk,
    input  wire [3:0]  w,
    input  wire [7:0]  x,
    output reg  [11:0] p
);
    wire [11:0] p_d;
    vitfpga_lutmul #(.WBITS(4)) u_mul (.w(w), .x(x), .p(p_d));
    always @(posedge clk) p <= p_d;
endmodule
""")
    report = synthesize(rtl, tmp_path / "build", top="lutmul_top")
    assert report.dsp == 0
    assert 0 < report.lut <= 48 and report.ff == 12
