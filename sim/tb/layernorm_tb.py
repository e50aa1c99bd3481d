"""The LayerNorm unit's cocotb bench (`Bench`, `play_case`), played by `layernorm_vec_tb` for
`vitfpga_layernorm_vec`, which `tests/sim/test_layernorm_vec_unit.py` drives through
`vitfpga.sim.unit.run_unit`.

The case ($VITFPGA_UNIT_CASE) is a list of runs played back to back in one simulation, without a
reset between them. Each run gives the start inputs (d, rows, pbase, mult, shift, eps), the int16
elements to stream in (row-major) and the probabilities of an input valid gap and of out_ready
low in a cycle. The bench drives and records; it judges only what the pytest side cannot see:
the AXI-Stream hold rule on the output (out_valid/out_data unchanged until accepted), one `done`
pulse per run, `idle` low while running and high after, and no output after the run's last.
Elements move L a beat (element j at bits [16j +: 16] in, [8j +: 8] out, L read from
out_data's width), so a run's elements and outputs stay row-major lists of elements.
Per run it returns the int8 outputs (signed), the cycles from the edge that samples `start` to
the edge that raises `done`, and those check counts.

All sampling happens at the falling edge, half a cycle away from the rising edge where the DUT
and the bench change signals, as in `engine_tb`.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import cocotb
from cocotb.clock import Clock

from vitfpga.sim.tb.unit_bench import PERIOD_NS, UnitBench, cycle

TIMEOUT_CYCLES = 50_000  # per run; the longest run in the tests takes about 3,000
AFTER_CYCLES = 4  # cycles watched after `done` for a stray output or a second pulse


def _s8(value: int) -> int:
    return value - 256 if value & 0x80 else value


class Bench(UnitBench):
    """Drives `lanes` int16 elements a beat in and takes `lanes` int8 out."""

    def __init__(self, dut: Any) -> None:
        super().__init__(dut)
        self.lanes = len(dut.out_data) // 8

    def pack(self, xs: list[int]) -> list[int]:
        """The row-major int16 elements as input beats of `lanes` elements."""
        n = self.lanes
        return [sum((x & 0xFFFF) << (16 * j) for j, x in enumerate(xs[i:i + n]))
                for i in range(0, len(xs), n)]

    def unpack(self, data: int) -> list[int]:
        return [_s8((data >> (8 * j)) & 0xFF) for j in range(self.lanes)]

    async def collect(self, count: int, stall_p: float, rng: random.Random, got: list[int],
                      errors: list[str]) -> None:
        """Take `count` output elements, out_ready low at random; check the hold rule meanwhile."""
        d = self.dut
        held: int | None = None  # data of an output seen and not accepted
        while len(got) < count:
            ready = not stall_p or rng.random() >= stall_p
            d.out_ready.value = int(ready)
            await self.sample()
            valid = int(d.out_valid.value) == 1
            data = int(d.out_data.value) if valid else None
            if held is not None and data != held:
                errors.append(f"cycle {cycle()}: output {held} dropped or changed to {data} "
                              "before it was accepted")
            held = data if valid and not ready else None
            if valid and ready:
                got.extend(self.unpack(int(data or 0)))
            await self.tick()
        d.out_ready.value = 0

    async def run(self, spec: dict[str, Any], index: int) -> dict[str, Any]:
        d = self.dut
        rng = random.Random(int(spec.get("seed", index)))
        xs = [int(v) for v in spec["x"]]
        count = int(spec["rows"]) * int(spec["d"])
        errors: list[str] = []
        got: list[int] = []
        # Drive the start pulse; the driver offers the first element in the same cycle, so an
        # always-valid input is ready to move at the first edge after the start edge.
        await self.tick()
        for name in ("d", "rows", "pbase", "mult", "shift", "eps"):
            getattr(d, name).value = int(spec[name])
        d.start.value = 1
        gap_p = float(spec.get("in_gap", 0.0))
        driver = cocotb.start_soon(self.drive(self.pack(xs),
                                              lambda: not gap_p or rng.random() >= gap_p))
        collector = cocotb.start_soon(self.collect(
            count, float(spec.get("out_stall", 0.0)), random.Random(rng.random()), got, errors))
        await self.sample()
        if int(d.idle.value) != 1:
            errors.append("not idle before start")
        await self.tick()
        start = cycle()
        d.start.value = 0
        done_at = -1
        dones = 0
        busy_seen = count == 0  # an empty run may finish without ever looking busy
        while True:
            await self.sample()
            now = cycle()
            if int(d.done.value) == 1:
                dones += 1
                if done_at < 0:
                    done_at = now
            elif done_at < 0 and int(d.idle.value) == 0:
                busy_seen = True
            if done_at >= 0 and now - done_at >= AFTER_CYCLES:
                break
            if done_at >= 0 and int(d.out_valid.value) == 1:
                errors.append(f"cycle {now}: out_valid after the run's done")
            if now - start > TIMEOUT_CYCLES:
                errors.append(f"no done within {TIMEOUT_CYCLES} cycles "
                              f"({len(got)} of {count} outputs)")
                break
        if done_at >= 0 and int(d.idle.value) != 1:
            errors.append("not idle after done")
        if not busy_seen:
            errors.append("idle never dropped during the run")
        for task in (driver, collector):
            if not task.done():
                task.cancel()
        d.in_valid.value = 0
        d.out_ready.value = 0
        return {"y": got, "cycles": done_at - start if done_at >= 0 else -1, "dones": dones,
                "errors": errors}


async def play_case(dut: Any) -> None:
    """Play every run of the case back to back and write what was seen."""
    case = json.loads(Path(os.environ["VITFPGA_UNIT_CASE"]).read_text())
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    for name in ("start", "in_valid", "out_ready", "d", "rows", "pbase", "mult", "shift", "eps",
                 "in_data"):
        getattr(dut, name).value = 0
    dut.rst_n.value = 0
    bench = Bench(dut)
    for _ in range(3):
        await bench.tick()
    dut.rst_n.value = 1
    results = [await bench.run(spec, i) for i, spec in enumerate(case["runs"])]
    Path(os.environ["VITFPGA_UNIT_RESULT"]).write_text(json.dumps({"runs": results}))
