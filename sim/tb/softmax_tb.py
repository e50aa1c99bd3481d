"""The softmax unit's cocotb bench (`Bench`), extended by `softmax_vec_tb` for
`vitfpga_softmax_vec`, which `tests/sim/test_softmax_vec_unit.py` drives through
`vitfpga.sim.unit.run_unit`.

The case ($VITFPGA_UNIT_CASE) is a list of runs played back to back in one simulation, without a
reset in between. Each run gives the control inputs (t, rows, mult, shift, prob_max), the scores
(rows*t int32, rows back to back), the probabilities that an input pause (in_valid low) or an
output pause (out_ready low) begins in a cycle, and `burst`, the longest pause (each lasts 1 to
`burst` cycles, uniformly). The bench drives and records, and judges nothing but liveness (a
run that never finishes fails the test). `Bench` moves one score a beat; `softmax_vec_tb` packs
them L a beat. Per run it returns the output beats, the cycle stamps of the start edge and of
the `done` pulse and the cycles between them, how many `done` pulses it saw, and whether the
unit was idle again afterwards.

All sampling happens at the falling edge, half a cycle away from the rising edge where the DUT
and the bench change signals, as in `engine_tb`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import cocotb

from vitfpga.sim.tb.unit_bench import UnitBench, cycle

SLACK_CYCLES = 2000  # beyond rows*t*(stall factor): a run still going then is hung


class Bench(UnitBench):
    def __init__(self, dut: Any, seed: int) -> None:
        super().__init__(dut)
        self.in_rng = random.Random(seed)
        self.out_rng = random.Random(seed + 1)

    async def reset(self) -> None:
        d = self.dut
        d.rst_n.value = 0
        d.start.value = 0
        d.in_valid.value = 0
        d.out_ready.value = 0
        for name in ("t", "rows", "mult", "shift", "prob_max", "in_data"):
            getattr(d, name).value = 0
        for _ in range(4):
            await self.tick()
        d.rst_n.value = 1
        await self.tick()

    @staticmethod
    def _pattern(rng: random.Random, p: float, burst: int) -> Iterator[bool]:
        """Per cycle: True to move (valid / ready high). With probability `p` a pause starts,
        lasting 1..`burst` cycles."""
        while True:
            if p and rng.random() < p:
                for _ in range(rng.randint(1, max(1, burst))):
                    yield False
            else:
                yield True

    async def drive_input(self, scores: list[int], gap_p: float, burst: int) -> None:
        pattern = self._pattern(self.in_rng, gap_p, burst)
        await self.drive([s & 0xFFFFFFFF for s in scores], lambda: next(pattern))

    async def collect(self, stall_p: float, burst: int, rec: dict[str, Any], limit: int) -> None:
        """Take output elements until `done` pulses (or `limit` cycles pass), and count the
        `done` pulses seen meanwhile."""
        d = self.dut
        pattern = self._pattern(self.out_rng, stall_p, burst)
        while True:
            ready = next(pattern)
            d.out_ready.value = int(ready)
            await self.sample()
            if ready and int(d.out_valid.value) == 1:
                rec["out"].append(int(d.out_data.value))
            if int(d.done.value) == 1:
                rec["done_pulses"] += 1
                rec["done"] = cycle()
                break
            if cycle() > limit:
                rec["timed_out"] = True
                break
            await self.tick()
        d.out_ready.value = 0

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        d = self.dut
        rows, t = int(job["rows"]), int(job["t"])
        rec: dict[str, Any] = {"out": [], "start": None, "done": None, "done_pulses": 0,
                               "cycles": None, "timed_out": False, "idle_after": 0,
                               "extra_out": 0}
        d.t.value = t
        d.rows.value = rows
        d.mult.value = int(job["mult"])
        d.shift.value = int(job["shift"])
        d.prob_max.value = int(job["prob_max"])
        await self.sample()
        if int(d.idle.value) != 1:
            raise AssertionError("the unit is not idle before a start")
        await self.tick()
        d.start.value = 1
        await self.sample()
        rec["start"] = cycle() + 1  # the rising edge ending this cycle takes `start`
        await self.tick()
        d.start.value = 0
        # Scramble the control inputs: the unit must have latched them.
        d.t.value = 0
        d.rows.value = 0
        d.mult.value = 0
        d.shift.value = 0
        d.prob_max.value = 0
        burst = int(job.get("burst", 1))
        stretch = burst / (1.0 - max(job["gap_p"], job["stall_p"]))
        limit = rec["start"] + int(rows * max(t, 16) * 3 * stretch) + SLACK_CYCLES
        driver = cocotb.start_soon(self.drive_input(job["scores"], job["gap_p"], burst))
        await self.collect(job["stall_p"], burst, rec, limit)
        if not rec["timed_out"]:
            await driver
        else:
            driver.cancel()
            d.in_valid.value = 0
        # After done: idle again, no further output, no second pulse.
        d.out_ready.value = 1
        for _ in range(8):
            await self.tick()
            await self.sample()
            rec["extra_out"] += int(d.out_valid.value)
            rec["done_pulses"] += int(d.done.value)
        rec["idle_after"] = int(d.idle.value)
        if rec["done"] is not None:
            rec["cycles"] = rec["done"] - rec["start"]  # edges from start to done
        d.out_ready.value = 0
        await self.tick()
        return rec

