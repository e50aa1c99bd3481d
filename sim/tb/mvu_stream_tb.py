"""cocotb testbench for the bare `vitfpga_mvu` with a streamed operand (docs/engine.md, "Streamed
operand"), driven by `tests/sim/test_mvu_stream.py` through `vitfpga.sim.unit.run_unit`.

The case ($VITFPGA_UNIT_CASE) is a list of runs played back to back in one simulation. Each run
names a program entry, its input beats, and operand-buffer writes to make before its start
(between runs) and during it (concurrently with the run, always into words the run does not
read). The bench drives and records; it judges nothing except the handshake protocol's basic
liveness (a run that never finishes fails the test). Per run it returns the output beats
(out_data, out_raw, out_last) and cycle stamps: the start edge, the first and last output
handshakes and the `done` pulse.

All sampling happens at the falling edge, half a cycle away from the rising edge where the DUT
and the bench change signals, as in `engine_tb`.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import cocotb
from cocotb.clock import Clock

from vitfpga.sim.tb.unit_bench import PERIOD_NS, UnitBench, cycle

RUN_TIMEOUT_CYCLES = 200_000


class Bench(UnitBench):
    def __init__(self, dut: Any, case: dict[str, Any]) -> None:
        super().__init__(dut)
        self.rng = random.Random(int(case.get("seed", 0)))

    async def write_operands(self, writes: list[list[int]], gap_p: float) -> int:
        """Write (addr, be, data) words through opw_*, one per cycle, idle cycles at random;
        returns how many writes happened while the MVU was busy with a run."""
        d = self.dut
        busy = 0
        for addr, be, data in writes:
            while gap_p and self.rng.random() < gap_p:
                d.opw_en.value = 0
                await self.tick()
            d.opw_en.value = 1
            d.opw_addr.value = addr
            d.opw_be.value = be
            d.opw_data.value = data
            await self.sample()
            busy += int(d.idle.value) == 0
            await self.tick()
        d.opw_en.value = 0
        return busy

    async def drive_input(self, beats: list[int], stall_p: float) -> None:
        await self.drive(beats, lambda: not stall_p or self.rng.random() >= stall_p)

    async def collect(self, count: int, stall_p: float, seen: dict[str, Any]) -> None:
        d = self.dut
        while len(seen["data"]) < count:
            ready = not stall_p or self.rng.random() >= stall_p
            d.out_ready.value = int(ready)
            await self.sample()
            if ready and int(d.out_valid.value) == 1:
                seen["data"].append(int(d.out_data.value))
                seen["raw"].append(int(d.out_raw.value))
                seen["last"].append(int(d.out_last.value))
                seen["beat_cycles"].append(cycle())
            await self.tick()
        d.out_ready.value = 0

    async def run(self, run: dict[str, Any]) -> dict[str, Any]:
        d = self.dut
        stall_in = float(run.get("stall_in", 0.0))
        stall_out = float(run.get("stall_out", 0.0))
        gap_p = float(run.get("write_gap", 0.0))
        await self.write_operands(run["writes_before"], gap_p)
        await self.sample()
        idle_before = int(d.idle.value)
        d.layer.value = run["layer"]
        d.rows.value = run["rows"]
        d.load.value = 0
        d.start.value = 1
        await self.tick()
        start = cycle()
        d.start.value = 0
        seen: dict[str, Any] = {"data": [], "raw": [], "last": [], "beat_cycles": []}
        writer = cocotb.start_soon(self.write_operands(run["writes_during"], gap_p))
        tasks = [cocotb.start_soon(self.drive_input(run["beats"], stall_in)),
                 cocotb.start_soon(self.collect(run["out_beats"], stall_out, seen))]
        done = -1
        dones = 0
        for _ in range(RUN_TIMEOUT_CYCLES):
            await self.sample()
            if int(d.done.value) == 1:
                done = cycle()
                dones += 1
                break
        else:
            raise AssertionError(f"run of entry {run['layer']} never finished "
                                 f"({len(seen['data'])} of {run['out_beats']} beats)")
        for task in tasks:
            await task
        writes_busy = await writer
        # No further output beat and no second done once the run is over.
        for _ in range(4):
            await self.sample()
            dones += int(d.done.value)
            if int(d.out_valid.value) == 1:
                raise AssertionError(f"entry {run['layer']}: an output beat after done")
            await self.tick()
        return {"start": start, "done": done, "dones": dones, "idle_before": idle_before,
                "idle_after": int(d.idle.value), "writes_busy": writes_busy, **seen}


@cocotb.test()
async def mvu_stream(dut: Any) -> None:
    with open(os.environ["VITFPGA_UNIT_CASE"]) as f:
        case = json.load(f)
    bench = Bench(dut, case)
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    for name in ("start", "load", "in_valid", "out_ready", "opw_en", "opw_addr", "opw_be",
                 "opw_data", "in_data"):
        getattr(dut, name).value = 0
    dut.rows.value = 0
    dut.layer.value = 0
    dut.rst_n.value = 0
    for _ in range(3):
        await bench.tick()
    dut.rst_n.value = 1
    await bench.tick()
    results = [await bench.run(run) for run in case["runs"]]
    with open(os.environ["VITFPGA_UNIT_RESULT"], "w") as f:
        json.dump({"runs": results}, f)
