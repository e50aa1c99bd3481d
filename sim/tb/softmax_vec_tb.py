"""cocotb testbench for `vitfpga_softmax_vec` (the vector integer softmax unit, L scores a beat),
driven by `tests/sim/test_softmax_vec_unit.py` through `vitfpga.sim.unit.run_unit`.

The case is `softmax_tb`'s (runs played back to back, input gaps and output stalls in bursts)
plus `lanes`, the unit's L. Each run's scores (rows*t int32, rows back to
back) are packed here into beats of L lanes, ceil(t/L) beats a row, the last beat's unused
lanes filled with junk (they are don't care, so it must not leak into the result). Outputs
come back as the raw beats (L*8-bit integers); the pytest side unpacks them.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import cocotb
from cocotb.clock import Clock

from vitfpga.sim.tb.softmax_tb import Bench
from vitfpga.sim.tb.unit_bench import PERIOD_NS


def pack_beats(scores: list[int], t: int, lanes: int, rng: random.Random) -> list[int]:
    """Rows of `t` int32 scores as beats of `lanes` 32-bit lanes (lane j at bits 32j), each row
    starting a new beat. Lanes past the row's end hold junk: random words (often above the
    row's maximum, which the max must ignore) or copies of the row's scores (whose e would
    count in the sum if the unit did not mask them)."""
    beats = []
    for r in range(0, len(scores), t):
        row = [s & 0xFFFFFFFF for s in scores[r:r + t]]
        for b in range(0, t, lanes):
            chunk = row[b:b + lanes]
            chunk += [rng.getrandbits(32) if rng.random() < 0.5 else rng.choice(row)
                      for _ in range(lanes - len(chunk))]
            beats.append(sum(v << (32 * j) for j, v in enumerate(chunk)))
    return beats


class VecBench(Bench):
    def __init__(self, dut: Any, seed: int, lanes: int) -> None:
        super().__init__(dut, seed)
        self.lanes = lanes
        self.pad_rng = random.Random(seed + 2)
        self.t = 1

    async def drive_input(self, scores: list[int], gap_p: float, burst: int) -> None:
        pattern = self._pattern(self.in_rng, gap_p, burst)
        beats = pack_beats(scores, self.t, self.lanes, self.pad_rng)
        await self.drive(beats, lambda: next(pattern))

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        self.t = max(1, int(job["t"]))
        return await super().run(job)


@cocotb.test()
async def softmax_vec_runs(dut: Any) -> None:
    with open(os.environ["VITFPGA_UNIT_CASE"]) as f:
        case = json.load(f)
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    bench = VecBench(dut, int(case.get("seed", 0)), int(case["lanes"]))
    await bench.reset()
    results = []
    for job in case["runs"]:
        rec = await bench.run(job)
        results.append(rec)
        if rec["timed_out"]:
            break
    with open(os.environ["VITFPGA_UNIT_RESULT"], "w") as f:
        json.dump({"runs": results}, f)
