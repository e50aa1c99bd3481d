"""The bench of the pipelined arithmetic units `vitfpga_requant` and `vitfpga_rescale_add`, used by
`tests/sim/test_arith_units.py` through `vitfpga.sim.unit.run_unit`.

The toplevel is `PAIR_TOP` (`PAIR_VERILOG`, written next to the build by the test): one instance
of each unit on a shared clock and clock enable, so that one simulator build plays both. The
case ($VITFPGA_UNIT_CASE) lists input beats (port -> value per beat, unsigned) and the
probability of `en` low in a cycle (`stall`, seeded by `seed`). A beat is presented while `en`
is high, and moves on each enabled edge; while `en` is low the inputs carry another beat's
values, which must not be taken. After the beats run out, `drain` more enabled edges are clocked
with such stray inputs. The bench records both outputs after every enabled edge (unsigned; None
while a simulator still shows X), and judges only what pytest cannot see: that neither output
changes on an edge with `en` low. Signals change at the falling edge and are read at the next
falling edge, half a cycle away from the rising edge that clocks the units.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from vitfpga.sim.tb.unit_bench import PERIOD_NS

__all__ = ["OUTPUTS", "PAIR_TOP", "PAIR_VERILOG"]

PAIR_TOP = "arith_pair"
OUTPUTS = ("y_rq", "y_ra")

PAIR_VERILOG = """\
`timescale 1ns/1ps
module arith_pair (
    input  wire        clk,
    input  wire        en,
    input  wire [31:0] acc,
    input  wire [31:0] mult,
    input  wire [7:0]  shift,
    input  wire        relu,
    input  wire [7:0]  a,
    input  wire [15:0] x,
    input  wire [31:0] m0,
    input  wire [31:0] m1,
    input  wire [7:0]  s0,
    input  wire [7:0]  s1,
    output wire [7:0]  y_rq,
    output wire [15:0] y_ra
);
    vitfpga_requant u_rq (.clk(clk), .en(en), .acc(acc), .mult(mult), .shift(shift),
                          .relu(relu), .y(y_rq));
    vitfpga_rescale_add u_ra (.clk(clk), .en(en), .a(a), .x(x), .m0(m0), .m1(m1), .s0(s0),
                              .s1(s1), .y(y_ra));
endmodule
"""


def _read(dut: Any, name: str) -> int | None:
    value = getattr(dut, name).value
    return int(value) if value.is_resolvable else None


async def _play(dut: Any, case: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(int(case["seed"]))
    beats: dict[str, list[int]] = case["beats"]
    names = list(beats)
    count = len(beats[names[0]])
    stall = float(case["stall"])
    target = count + int(case["drain"])  # enabled edges to clock
    seen: dict[str, list[int | None]] = {o: [] for o in OUTPUTS}
    errors: list[str] = []
    held = {o: _read(dut, o) for o in OUTPUTS}
    edges = cycles = 0
    while edges < target:
        en = rng.random() >= stall
        # A stalled cycle, or one past the beats, offers some other beat's values.
        pick = edges if en and edges < count else rng.randrange(count)
        dut.en.value = int(en)
        for name in names:
            getattr(dut, name).value = beats[name][pick]
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        cycles += 1
        now = {o: _read(dut, o) for o in OUTPUTS}
        if en:
            edges += 1
            for o in OUTPUTS:
                seen[o].append(now[o])
        else:
            errors += [f"cycle {cycles}: {o} changed from {held[o]} to {now[o]} with en low"
                       for o in OUTPUTS if now[o] != held[o]]
        held = now
    return {"seen": seen, "edges": edges, "cycles": cycles, "errors": errors}


@cocotb.test()
async def arith_runs(dut: Any) -> None:
    """Play the case's beats and write what was seen."""
    case = json.loads(Path(os.environ["VITFPGA_UNIT_CASE"]).read_text())
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.en.value = 0
    await FallingEdge(dut.clk)
    result = await _play(dut, case)
    Path(os.environ["VITFPGA_UNIT_RESULT"]).write_text(json.dumps(result))
