"""cocotb testbench for `vitfpga_engine` (docs/engine.md), driven by `vitfpga.sim.rtl.run_rtl`.

The runner writes a JSON config (path in $VITFPGA_TB_CONFIG): fold, input rows, expected rows,
whether to stress the handshakes, and where to write results. The bench resets the engine; then,
twice, sets `rows` and `ap_start` over AXI4-Lite, streams the rows in, collects the output, and
reads `ap_done`, the interrupt and `cycles`. It writes outputs and cycle counts to JSON *before*
it asserts anything, so the runner can count mismatches even when the test fails.

All sampling happens at the falling edge, half a cycle away from the rising edge where the engine
and the bench change signals, so it means the same thing in Icarus and Verilator.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, RisingEdge, SimTimeoutError, with_timeout

CONFIG_ENV = "VITFPGA_TB_CONFIG"
PERIOD_NS = 10
STALL_P = 0.3  # probability of a TVALID gap / TREADY low per cycle in stress mode

REG_CTRL, REG_GIE, REG_IER, REG_ISR = 0x00, 0x04, 0x08, 0x0C
REG_ROWS, REG_CYCLES, REG_CYCLES_OK = 0x10, 0x18, 0x1C
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4


def _lanes(word: int, lanes: int) -> list[int]:
    out = []
    for i in range(lanes):
        v = (word >> (8 * i)) & 0xFF
        out.append(v - 256 if v & 0x80 else v)
    return out


def _pack(values: list[int]) -> int:
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & 0xFF) << (8 * i)
    return word


def _cycle() -> int:
    return int(get_sim_time("ns")) // PERIOD_NS


class Bench:
    def __init__(self, dut: Any, cfg: dict[str, Any]) -> None:
        self.dut = dut
        self.cfg = cfg
        self.clk = dut.ap_clk
        stress = bool(cfg["stress"])
        self.in_rng = random.Random(cfg["seed"]) if stress else None
        self.out_rng = random.Random(cfg["seed"] + 1) if stress else None

    async def tick(self) -> None:
        """Finish the current cycle: after this, signals set now are seen at the next edge."""
        await RisingEdge(self.clk)

    async def sample(self) -> None:
        await FallingEdge(self.clk)

    async def handshake(self, signal: Any, capture: Any = None) -> int:
        """Hold the current drive until `signal` is seen high at an edge and complete that cycle;
        returns `capture`'s value sampled in the handshake cycle (0 without one)."""
        while True:
            await self.sample()
            fired = int(signal.value) == 1
            value = int(capture.value) if fired and capture is not None else 0
            await self.tick()
            if fired:
                return value

    # ---- AXI4-Lite master -----------------------------------------------------------------------
    async def write(self, addr: int, data: int) -> int:
        """One write; returns the cycle of the W handshake."""
        d = self.dut
        d.s_axi_control_AWADDR.value = addr
        d.s_axi_control_AWVALID.value = 1
        d.s_axi_control_WDATA.value = data
        d.s_axi_control_WSTRB.value = 0xF
        d.s_axi_control_WVALID.value = 1
        d.s_axi_control_BREADY.value = 1
        aw_done = w_done = False
        w_cycle = -1
        while not (aw_done and w_done):
            await self.sample()
            aw_fire = not aw_done and int(d.s_axi_control_AWREADY.value) == 1
            w_fire = not w_done and int(d.s_axi_control_WREADY.value) == 1
            await self.tick()
            if aw_fire:
                aw_done = True
                d.s_axi_control_AWVALID.value = 0
            if w_fire:
                w_done = True
                w_cycle = _cycle()
                d.s_axi_control_WVALID.value = 0
        await self.handshake(d.s_axi_control_BVALID)
        d.s_axi_control_BREADY.value = 0
        return w_cycle

    async def read(self, addr: int) -> int:
        d = self.dut
        d.s_axi_control_ARADDR.value = addr
        d.s_axi_control_ARVALID.value = 1
        d.s_axi_control_RREADY.value = 1
        await self.handshake(d.s_axi_control_ARREADY)
        d.s_axi_control_ARVALID.value = 0
        data = await self.handshake(d.s_axi_control_RVALID, d.s_axi_control_RDATA)
        d.s_axi_control_RREADY.value = 0
        return data

    # ---- AXI4-Stream ----------------------------------------------------------------------------
    async def drive_input(self, beats: list[int]) -> None:
        d = self.dut
        idx = 0
        while idx < len(beats):
            valid = self.in_rng is None or self.in_rng.random() >= STALL_P
            d.s_axis_TVALID.value = int(valid)
            d.s_axis_TDATA.value = beats[idx]
            d.s_axis_TLAST.value = int(idx == len(beats) - 1)
            await self.sample()
            fire = valid and int(d.s_axis_TREADY.value) == 1
            await self.tick()
            if fire:
                idx += 1
        d.s_axis_TVALID.value = 0
        d.s_axis_TLAST.value = 0

    async def collect(self, count: int, got: list[int], lasts: list[int]) -> int:
        """Receive `count` beats into `got`/`lasts`; return the cycle of the final handshake."""
        d = self.dut
        cycle = -1
        while len(got) < count:
            ready = self.out_rng is None or self.out_rng.random() >= STALL_P
            d.m_axis_TREADY.value = int(ready)
            await self.sample()
            fire = ready and int(d.m_axis_TVALID.value) == 1
            if fire:
                got.append(int(d.m_axis_TDATA.value))
                lasts.append(int(d.m_axis_TLAST.value))
            await self.tick()
            if fire:
                cycle = _cycle()
        return cycle

    async def extra_beats(self, cycles: int) -> int:
        """Beats offered after the run should have ended (each one a duplicate or a stray)."""
        self.dut.m_axis_TREADY.value = 1
        extra = 0
        for _ in range(cycles):
            await self.sample()
            extra += int(self.dut.m_axis_TVALID.value)
            await self.tick()
        return extra

    async def reset(self) -> None:
        d = self.dut
        for name in ("s_axi_control_AWVALID", "s_axi_control_WVALID", "s_axi_control_ARVALID",
                     "s_axi_control_RREADY", "s_axi_control_BREADY", "s_axis_TVALID",
                     "s_axis_TLAST", "m_axis_TREADY"):
            getattr(d, name).value = 0
        d.s_axi_control_AWADDR.value = 0
        d.s_axi_control_ARADDR.value = 0
        d.s_axi_control_WDATA.value = 0
        d.s_axi_control_WSTRB.value = 0
        d.s_axis_TDATA.value = 0
        d.s_axis_TKEEP.value = (1 << self.cfg["simd"]) - 1
        d.s_axis_TSTRB.value = (1 << self.cfg["simd"]) - 1
        d.ap_rst_n.value = 0
        for _ in range(5):
            await self.tick()
        d.ap_rst_n.value = 1
        for _ in range(2):
            await self.tick()


async def run_once(bench: Bench, x: list[list[int]], max_cycles: int) -> dict[str, Any]:
    """One ap_start run over rows `x`: outputs, handshake checks and cycle counts."""
    cfg, dut = bench.cfg, bench.dut
    rows, simd, pe = len(x), cfg["simd"], cfg["pe"]
    sf, nf = cfg["k"] // simd, cfg["n"] // pe
    await bench.write(REG_ROWS, rows)
    rows_readback = await bench.read(REG_ROWS)

    beats = [_pack(x[r][f * simd:(f + 1) * simd]) for r in range(rows) for f in range(sf)]
    got: list[int] = []
    lasts: list[int] = []
    driver = cocotb.start_soon(bench.drive_input(beats))
    collector = cocotb.start_soon(bench.collect(rows * nf, got, lasts))
    start_cycle = await bench.write(REG_CTRL, AP_START)

    rec: dict[str, Any] = {"rows_readback": rows_readback, "timed_out": False, "cycles": None,
                           "bench_cycles": None, "extra_beats": 0, "ctrl": 0, "irq": 0,
                           "irq_cleared": 1, "cycles_ok": 0}
    try:
        end_cycle = await with_timeout(collector, max_cycles * PERIOD_NS, "ns")
    except SimTimeoutError:
        rec["timed_out"] = True
        collector.cancel()
        driver.cancel()
    else:
        rec["bench_cycles"] = end_cycle - start_cycle
        rec["extra_beats"] = await bench.extra_beats(16)
        for _ in range(16):  # done follows the last beat within a cycle or two
            rec["ctrl"] = await bench.read(REG_CTRL)
            if rec["ctrl"] & AP_DONE:
                break
        rec["irq"] = int(dut.interrupt.value)
        await bench.write(REG_ISR, 1)  # toggle-on-write clears the done status
        rec["irq_cleared"] = int(dut.interrupt.value)
        rec["cycles_ok"] = await bench.read(REG_CYCLES_OK)
        rec["cycles"] = await bench.read(REG_CYCLES)
    rec["y"] = [[v for beat in got[r * nf:(r + 1) * nf] for v in _lanes(beat, pe)]
                for r in range(len(got) // nf)]
    rec["lasts"] = lasts
    return rec


def _check(rec: dict[str, Any], expected: list[list[int]], run: int, max_cycles: int) -> None:
    where = f"run {run}: "
    assert rec["rows_readback"] == len(expected), where + f"rows reads {rec['rows_readback']}"
    assert not rec["timed_out"], where + f"no result after {max_cycles} cycles"
    bad = sum(a != b for ry, re_ in zip(rec["y"], expected, strict=False)
              for a, b in zip(ry, re_, strict=True))
    assert rec["y"] == expected, where + f"{bad} output values differ from the golden"
    lasts = rec["lasts"]
    assert lasts == [0] * (len(lasts) - 1) + [1], where + "TLAST must mark only the final beat"
    assert rec["extra_beats"] == 0, where + f"{rec['extra_beats']} beats after the final one"
    assert rec["ctrl"] & AP_DONE, where + f"ap_done never read back (ctrl={rec['ctrl']:#x})"
    assert rec["ctrl"] & AP_IDLE, where + f"not idle once done (ctrl={rec['ctrl']:#x})"
    assert rec["irq"] == 1 and rec["irq_cleared"] == 0, (
        where + f"interrupt {rec['irq']}, after the ISR write {rec['irq_cleared']}")
    assert rec["cycles_ok"] & 1, where + "cycles register not marked valid"
    assert abs(rec["cycles"] - rec["bench_cycles"]) <= 2, (
        where + f"cycles register {rec['cycles']} but the bench counted {rec['bench_cycles']}")


@cocotb.test()
async def engine_run(dut: Any) -> None:
    """Two runs without a reset between them, the second over the rows in reverse order, so
    state left behind by a run (buffer banks, counters, done/interrupt flags) cannot hide."""
    cfg = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    x, expected, max_cycles = cfg["x"], cfg["expected"], cfg["max_cycles"]

    Clock(dut.ap_clk, PERIOD_NS, unit="ns").start()
    bench = Bench(dut, cfg)
    await bench.reset()
    ctrl_after_reset = await bench.read(REG_CTRL)
    await bench.write(REG_GIE, 1)
    await bench.write(REG_IER, 1)

    first = await run_once(bench, x, max_cycles)
    second = None if first["timed_out"] else await run_once(bench, x[::-1], max_cycles)

    # Report the run that went worse, its rows back in the original order.
    report = first
    if second is not None and first["y"] == expected and second["y"][::-1] != expected:
        report = dict(second, y=second["y"][::-1])
    Path(cfg["out_path"]).write_text(json.dumps({
        "y": report["y"], "timed_out": report["timed_out"] or (second or first)["timed_out"],
        "cycles": first["cycles"], "bench_cycles": first["bench_cycles"],
    }))

    assert ctrl_after_reset & AP_IDLE, f"engine not idle after reset (ctrl={ctrl_after_reset:#x})"
    _check(first, expected, 1, max_cycles)
    assert second is not None
    _check(second, expected[::-1], 2, max_cycles)
    if not cfg["stress"]:
        assert second["cycles"] == first["cycles"], (
            f"a free-flowing run took {first['cycles']} then {second['cycles']} cycles")
