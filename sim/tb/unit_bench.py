"""What the per-unit cocotb benches (`vitfpga.sim.unit.run_unit`) share: the clock, its two
edges (signals change at the rising edge, sampling happens at the falling one, so Icarus and
Verilator agree), and the valid/ready input-stream driver."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, RisingEdge

__all__ = ["PERIOD_NS", "UnitBench", "cycle"]

PERIOD_NS = 10


def cycle() -> int:
    """Rising edges so far (an integer at either edge: the clock rises at multiples of 10 ns)."""
    return int(get_sim_time("ns")) // PERIOD_NS


class UnitBench:
    def __init__(self, dut: Any) -> None:
        self.dut = dut
        self.clk = dut.clk

    async def tick(self) -> None:
        await RisingEdge(self.clk)

    async def sample(self) -> None:
        await FallingEdge(self.clk)

    async def drive(self, values: Sequence[int], valid: Callable[[], bool]) -> None:
        """Offer `values` on in_data/in_valid, one a cycle while `valid()` says so; a value
        moves when in_ready is high at the edge."""
        d = self.dut
        idx = 0
        while idx < len(values):
            offer = valid()
            d.in_valid.value = int(offer)
            d.in_data.value = values[idx]
            await self.sample()
            fire = offer and int(d.in_ready.value) == 1
            await self.tick()
            if fire:
                idx += 1
        d.in_valid.value = 0
