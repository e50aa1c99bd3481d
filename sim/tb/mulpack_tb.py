"""Benches for the packed multipliers of `vitfpga_mulpack.v`, used by
`tests/sim/test_mulpack.py`.

- The exhaustive sweep: `SWEEP_VERILOG` (toplevel `SWEEP_TOP`) walks every input of its banks of
  multipliers by itself and writes each bank's outputs to a binary file; `SWEEP_MAIN` clocks it
  under a plain Verilator build.
- The stream bench (cocotb, through `vitfpga.sim.unit.run_unit`): the toplevel is one
  multiplier module. The case ($VITFPGA_UNIT_CASE) lists input beats (port -> value per beat)
  and the output ports to record; the bench drives `ce` low and `in_valid` low at random
  (probabilities `stall` and `gap`, seeded) and returns, for every accepted beat, the index of
  the ce-qualified edge that took it and, for every output with `out_valid` high after a
  ce-qualified edge, that edge's index and the ports' values (unsigned). The pytest side
  judges. Signals change half a cycle before the rising edge and are sampled at the falling
  edge, as in the other unit benches.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from vitfpga.sim.tb.unit_bench import PERIOD_NS

__all__ = ["SWEEP_MAIN", "SWEEP_TOP", "SWEEP_VERILOG"]

SWEEP_TOP = "mulpack_sweep"

# Three banks of 16 instances each; input t of a bank (t = 16*c + i, i the instance, c a counter
# stepping every clock) is:
#   A: vitfpga_mul2x8, SHIFT 18, LATENCY 3: a0 = t[7:0], b = t[15:8], a1 = t[23:16], t < 2^24
#   B: vitfpga_mul2x8, SHIFT 16, LATENCY 2: the same
#   C: vitfpga_mul3x4, WBITS 4, LATENCY 4: w0 = t[3:0], w1 = t[7:4], w2 = t[11:8],
#      x = t[19:12], t < 2^20
# so banks A and B see all 2^24 (a0, a1, b) triples and bank C all 2^20 (w0, w1, w2, x). Record
# c of a bank's file holds its outputs for inputs 16c .. 16c+15, as 16-bit little-endian words,
# each product sign-extended: banks A/B [p0 of i = 0..15, p1 of i = 0..15], bank C [p0, p1, p2
# of i = 0, then i = 1, ...]. A bank writes a record whenever all its out_valid bits are high.
SWEEP_VERILOG = """\
`timescale 1ns/1ps
module mulpack_sweep #(
    parameter FILE_A = "a.bin",
    parameter FILE_B = "b.bin",
    parameter FILE_C = "c.bin"
) (
    input  wire clk,
    input  wire rst_n,
    output reg  done
);
    reg  [20:0] c;  // bit 20: the sweep has run through
    wire        run = rst_n && !c[20];
    wire        run_c = run && c[19:16] == 4'd0;
    wire [15:0] va, vb, vc;
    wire [511:0] out_a, out_b;
    wire [767:0] out_c;
    genvar i;
    generate
        for (i = 0; i < 16; i = i + 1) begin : g
            wire [3:0] ii = i;
            wire [15:0] pa0, pa1, pb0, pb1;
            wire [35:0] pc;
            vitfpga_mul2x8 #(.SHIFT(18), .LATENCY(3)) u_a (
                .clk(clk), .rst_n(rst_n), .ce(1'b1), .in_valid(run), .a0({c[3:0], ii}),
                .a1(c[19:12]), .b(c[11:4]), .out_valid(va[i]), .p0(pa0), .p1(pa1));
            vitfpga_mul2x8 #(.SHIFT(16), .LATENCY(2)) u_b (
                .clk(clk), .rst_n(rst_n), .ce(1'b1), .in_valid(run), .a0({c[3:0], ii}),
                .a1(c[19:12]), .b(c[11:4]), .out_valid(vb[i]), .p0(pb0), .p1(pb1));
            vitfpga_mul3x4 #(.WBITS(4), .LATENCY(4)) u_c (
                .clk(clk), .rst_n(rst_n), .ce(1'b1), .in_valid(run_c),
                .w({c[7:0], ii}), .x(c[15:8]), .out_valid(vc[i]), .p(pc));
            assign out_a[i*16 +: 16] = pa0;
            assign out_a[256 + i*16 +: 16] = pa1;
            assign out_b[i*16 +: 16] = pb0;
            assign out_b[256 + i*16 +: 16] = pb1;
            assign out_c[i*48 +: 48] = {{4{pc[35]}}, pc[35:24], {4{pc[23]}}, pc[23:12],
                                        {4{pc[11]}}, pc[11:0]};
        end
    endgenerate
    integer fa, fb, fc;
    initial begin
        fa = $fopen(FILE_A, "wb");
        fb = $fopen(FILE_B, "wb");
        fc = $fopen(FILE_C, "wb");
    end
    reg [3:0] tail;  // cycles after the last input: every latency has run out by 8
    always @(posedge clk) begin
        if (!rst_n) begin
            c <= 21'd0;
            tail <= 4'd0;
            done <= 1'b0;
        end else begin
            if (!c[20]) c <= c + 21'd1;
            if (&va) $fwrite(fa, "%u", out_a);
            if (&vb) $fwrite(fb, "%u", out_b);
            if (&vc) $fwrite(fc, "%u", out_c);
            if (c[20] && !done) begin
                tail <= tail + 4'd1;
                if (tail == 4'd8) begin
                    done <= 1'b1;
                    $fclose(fa);
                    $fclose(fb);
                    $fclose(fc);
                end
            end
        end
    end
endmodule
"""

# A Verilator main for the sweep: cocotb's per-cycle round trip (and the VPI symbol tables of a
# public build) would cost minutes for 2^20 cycles; a plain C++ loop takes about a second.
SWEEP_MAIN = """\
#include "Vmulpack_sweep.h"
#include "verilated.h"
int main(int argc, char** argv) {
    VerilatedContext ctx;
    ctx.commandArgs(argc, argv);
    Vmulpack_sweep top{&ctx};
    top.rst_n = 0;
    for (long cyc = 0; cyc < (1L << 21) + 64 && !top.done; ++cyc) {
        if (cyc == 4) top.rst_n = 1;
        top.clk = 0;
        top.eval();
        top.clk = 1;
        top.eval();
    }
    top.final();
    return top.done ? 0 : 1;
}
"""


async def _stream(dut: Any, case: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(int(case["seed"]))
    beats: dict[str, list[int]] = case["beats"]
    names = list(beats)
    count = len(beats[names[0]]) if names else 0
    outputs: list[str] = case["outputs"]
    stall, gap = float(case["stall"]), float(case["gap"])
    dut.rst_n.value = 0
    dut.ce.value = 1
    dut.in_valid.value = 0
    for name in names:
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst_n.value = 1
    taken: list[int] = []  # ce-qualified edge index of each accepted beat
    seen: list[dict[str, int]] = []
    edges = 0
    idle_after = 0
    while idle_after < int(case["drain"]):
        ce = rng.random() >= stall
        valid = len(taken) < count and rng.random() >= gap
        dut.ce.value = int(ce)
        dut.in_valid.value = int(valid)
        # An idle input carries another beat's operands: they must not reach the outputs.
        pick = len(taken) if valid else rng.randrange(max(count, 1))
        for name in names:
            getattr(dut, name).value = beats[name][pick] if count else 0
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        if not ce:
            continue
        edges += 1
        if valid:
            taken.append(edges)
        if int(dut.out_valid.value) == 1:
            seen.append({"edge": edges, **{o: int(getattr(dut, o).value) for o in outputs}})
        if len(taken) == count:
            idle_after += 1
    return {"taken": taken, "seen": seen}


@cocotb.test()
async def mulpack_runs(dut: Any) -> None:
    """Stream the case's beats and write what was seen."""
    case = json.loads(Path(os.environ["VITFPGA_UNIT_CASE"]).read_text())
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    result = await _stream(dut, case)
    Path(os.environ["VITFPGA_UNIT_RESULT"]).write_text(json.dumps(result))
