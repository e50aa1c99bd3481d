"""cocotb testbench for `vitfpga_engine` (docs/engine.md), serving `vitfpga.sim.rtl.SimProcess`.

The bench is a server: it resets the engine, connects to the host's Unix socket (path in the
JSON config at $VITFPGA_TB_CONFIG) and serves what it is sent until told to stop. While the bench
waits for the next request the simulator is paused, so simulated time passes only while it serves.

Two kinds of requests:
- Whole runs for `RtlSession` (`run`, `load`): each writes `layer` and `rows` over AXI4-Lite,
  starts the engine, streams the padded rows in, collects the output beats, and reads back
  `ap_done`, the interrupt and `cycles`. It returns everything it saw and judges nothing: the
  session checks values and protocol in one place.
- Single bus operations for the simulated PYNQ board (`vitfpga.sim.overlay`): `write` and `read`
  of one AXI4-Lite register; `send` and `recv` start a DMA channel's stream (MM2S drives s_axis
  with TLAST on the final beat; S2MM takes m_axis beats until TLAST) as a background task and
  answer at once, so the stream advances during later register accesses exactly as on a board;
  `wait` lets a channel run until its transfer is complete or a cycle limit passes.
Every answer carries `cycle`, the clock cycles since the simulation began.

All sampling happens at the falling edge, half a cycle away from the rising edge where the engine
and the bench change signals, so it means the same thing in Icarus and Verilator.
"""

from __future__ import annotations

import json
import os
import random
import socket
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.task import Task
from cocotb.triggers import (
    Event,
    FallingEdge,
    First,
    RisingEdge,
    SimTimeoutError,
    Timer,
    with_timeout,
)

CONFIG_ENV = "VITFPGA_TB_CONFIG"
PERIOD_NS = 10
STALL_P = 0.3  # probability of a TVALID gap / TREADY low per cycle in stress mode

REG_CTRL, REG_GIE, REG_IER, REG_ISR = 0x00, 0x04, 0x08, 0x0C
REG_ROWS, REG_CYCLES, REG_CYCLES_OK, REG_LAYER, REG_MODE = 0x10, 0x18, 0x1C, 0x20, 0x28
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4
CHANNELS = ("mm2s", "s2mm")  # AXI DMA names: memory to stream (s_axis), stream to memory (m_axis)


def _pack(values: list[int]) -> int:
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & 0xFF) << (8 * i)
    return word


def _cycle() -> int:
    return int(get_sim_time("ns")) // PERIOD_NS


class StreamJob:
    """One DMA channel's transfer in flight: the task moving its beats and what it has moved."""

    def __init__(self, beats: list[int] | None = None, max_beats: int = 0) -> None:
        self.beats = beats or []  # MM2S: the beats to send
        self.max_beats = max_beats  # S2MM: the buffer's room, in beats
        self.moved = 0  # beats handshaked so far
        self.got: list[int] = []  # S2MM: the beats received
        self.overflow = False  # S2MM: the buffer filled before TLAST
        self.finished = Event()
        self.task: Task[None] | None = None


class Bench:
    def __init__(self, dut: Any, cfg: dict[str, Any]) -> None:
        self.dut = dut
        self.cfg = cfg
        self.clk = dut.ap_clk
        # The stream widths come from the design itself, so a host that knows nothing of the
        # plan (a simulated board) can learn them from the hello.
        self.in_bits = len(dut.s_axis_TDATA)
        self.out_bits = len(dut.m_axis_TDATA)
        stress = bool(cfg.get("stress", False))
        seed = int(cfg.get("seed", 0))
        self.in_rng = random.Random(seed) if stress else None
        self.out_rng = random.Random(seed + 1) if stress else None
        self.jobs: dict[str, StreamJob | None] = dict.fromkeys(CHANNELS)

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
    async def drive_input(self, beats: list[int], job: StreamJob | None = None) -> None:
        """Send `beats` on s_axis, TLAST on the final one; `job.moved` counts the handshakes."""
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
                if job is not None:
                    job.moved = idx
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

    async def collect_packet(self, job: StreamJob) -> None:
        """An S2MM transfer: take m_axis beats until one carries TLAST, or until the buffer's
        `job.max_beats` are full without it (an AXI DMA then stops with an internal error)."""
        d = self.dut
        while True:
            ready = self.out_rng is None or self.out_rng.random() >= STALL_P
            d.m_axis_TREADY.value = int(ready)
            await self.sample()
            fire = ready and int(d.m_axis_TVALID.value) == 1
            if self.out_rng is None and not fire:
                # Nothing offered: sleep until TVALID rises (it does just after a clock edge)
                # rather than polling each cycle from Python, so a long whole-model pass runs
                # at the simulator's pace; the next sample then sees it.
                await RisingEdge(d.m_axis_TVALID)
                continue
            last = fire and int(d.m_axis_TLAST.value) == 1
            if fire:
                job.got.append(int(d.m_axis_TDATA.value))
            await self.tick()
            if fire:
                job.moved += 1
                if last:
                    break
                if job.moved >= job.max_beats:
                    job.overflow = True
                    break
        d.m_axis_TREADY.value = 0

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
        d.s_axis_TKEEP.value = (1 << self.in_bits // 8) - 1
        d.s_axis_TSTRB.value = (1 << self.in_bits // 8) - 1
        d.ap_rst_n.value = 0
        for _ in range(5):
            await self.tick()
        d.ap_rst_n.value = 1
        for _ in range(2):
            await self.tick()


async def run_once(bench: Bench, req: dict[str, Any]) -> dict[str, Any]:
    """One ap_start run of layer `req["layer"]` over the padded rows `req["x"]`."""
    dut = bench.dut
    x, nf, simd = req["x"], req["nf"], bench.in_bits // 8
    rows = len(x)
    beats_per_row = len(x[0]) // simd  # rows come padded to whole beats (SF, or SF*R for N:M)
    await bench.write(REG_LAYER, req["layer"])
    await bench.write(REG_ROWS, rows)
    rec: dict[str, Any] = {"layer_readback": await bench.read(REG_LAYER),
                           "rows_readback": await bench.read(REG_ROWS), "timed_out": False,
                           "cycles": None, "bench_cycles": None, "extra_beats": 0, "ctrl": 0,
                           "irq": 0, "irq_cleared": 1, "cycles_ok": 0}

    beats = [_pack(x[r][f * simd:(f + 1) * simd]) for r in range(rows)
             for f in range(beats_per_row)]
    got: list[int] = []
    lasts: list[int] = []
    driver = cocotb.start_soon(bench.drive_input(beats))
    collector = cocotb.start_soon(bench.collect(rows * nf, got, lasts))
    start_cycle = await bench.write(REG_CTRL, AP_START)
    try:
        end_cycle = await with_timeout(collector, req["max_cycles"] * PERIOD_NS, "ns")
    except SimTimeoutError:
        rec["timed_out"] = True
        collector.cancel()
        driver.cancel()
        dut.s_axis_TVALID.value = 0
        dut.m_axis_TREADY.value = 0
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
    rec["beats"] = got
    rec["lasts"] = lasts
    return rec


async def load_once(bench: Bench, req: dict[str, Any]) -> dict[str, Any]:
    """One weight load: `req["beats"]` (BPW beats a word) for `req["words"]` words."""
    await bench.write(REG_MODE, 1)
    await bench.write(REG_ROWS, req["words"])
    driver = cocotb.start_soon(bench.drive_input(req["beats"]))
    start_cycle = await bench.write(REG_CTRL, AP_START)
    rec: dict[str, Any] = {"timed_out": False, "ctrl": 0, "cycles": None, "extra_beats": 0}
    try:
        await with_timeout(driver, req["max_cycles"] * PERIOD_NS, "ns")
    except SimTimeoutError:
        rec["timed_out"] = True
        driver.cancel()
        bench.dut.s_axis_TVALID.value = 0
    else:
        rec["extra_beats"] = await bench.extra_beats(4)  # a load sends nothing
        for _ in range(16):
            rec["ctrl"] = await bench.read(REG_CTRL)
            if rec["ctrl"] & AP_DONE:
                break
        await bench.write(REG_ISR, 1)
        rec["cycles"] = await bench.read(REG_CYCLES)
        rec["bench_cycles"] = _cycle() - start_cycle
    await bench.write(REG_MODE, 0)
    return rec


# ---- single bus operations (the simulated PYNQ board) -------------------------------------------
async def op_write(bench: Bench, req: dict[str, Any]) -> dict[str, Any]:
    await bench.write(req["addr"], req["data"])
    return {}


async def op_read(bench: Bench, req: dict[str, Any]) -> dict[str, Any]:
    return {"data": await bench.read(req["addr"])}


def _start(bench: Bench, channel: str, job: StreamJob, work: Coroutine[Any, Any, None]
           ) -> dict[str, Any]:
    if bench.jobs[channel] is not None:
        work.close()
        return {"error": f"{channel}: a transfer is already in flight"}

    async def run() -> None:
        try:
            await work
        finally:
            job.finished.set()

    job.task = cocotb.start_soon(run())
    bench.jobs[channel] = job
    return {}


async def op_send(bench: Bench, req: dict[str, Any]) -> dict[str, Any]:
    """Start an MM2S transfer of `beats`; answers at once."""
    job = StreamJob(beats=req["beats"])
    return _start(bench, "mm2s", job, bench.drive_input(job.beats, job))


async def op_recv(bench: Bench, req: dict[str, Any]) -> dict[str, Any]:
    """Start an S2MM transfer into a buffer of `max_beats` beats; answers at once."""
    job = StreamJob(max_beats=req["max_beats"])
    return _start(bench, "s2mm", job, bench.collect_packet(job))


async def op_wait(bench: Bench, req: dict[str, Any]) -> dict[str, Any]:
    """Run until `channel`'s transfer completes or `max_cycles` clock cycles pass. A completed
    transfer is handed over (its beats for S2MM) and the channel is free again; one still in
    flight keeps going, as a DMA does while its driver gives up waiting."""
    job = bench.jobs[req["channel"]]
    if job is None:
        return {"done": True, "idle": True, "moved": 0, "beats": [], "overflow": False}
    if not job.finished.is_set() and req["max_cycles"] > 0:
        # A timer, not ClockCycles: one callback instead of a Python wake-up every cycle.
        await First(job.finished.wait(), Timer(req["max_cycles"] * PERIOD_NS, "ns"))
    done = job.finished.is_set()
    if done:
        bench.jobs[req["channel"]] = None
    return {"done": done, "idle": False, "moved": job.moved,
            "beats": job.got if done else [], "overflow": job.overflow}


async def op_cancel(bench: Bench, req: dict[str, Any]) -> dict[str, Any]:
    """Abort `channel`'s transfer, as the DMA's soft reset does: its stream handshakes stop
    (TVALID or TREADY low); beats already moved stay moved."""
    job = bench.jobs[req["channel"]]
    if job is not None:
        if job.task is not None and not job.finished.is_set():
            job.task.cancel()
        bench.jobs[req["channel"]] = None
    if req["channel"] == "mm2s":
        bench.dut.s_axis_TVALID.value = 0
        bench.dut.s_axis_TLAST.value = 0
    else:
        bench.dut.m_axis_TREADY.value = 0
    await bench.tick()
    return {"moved": 0 if job is None else job.moved}


OPS: dict[str, Callable[[Bench, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "run": run_once, "load": load_once, "write": op_write, "read": op_read, "send": op_send,
    "recv": op_recv, "wait": op_wait, "cancel": op_cancel}


def _connect(path: str) -> Connection:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return Connection(sock.detach())


@cocotb.test()
async def engine_server(dut: Any) -> None:
    """Serve requests until the host says stop; runs follow each other without a reset, so state
    one run leaves behind (buffer banks, counters, done/interrupt flags) cannot hide.

    With `board` in the config the engine is left as a freshly configured board has it
    (interrupts disabled); otherwise the bench enables the done interrupt that runs check."""
    cfg = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    Clock(dut.ap_clk, PERIOD_NS, unit="ns").start()
    bench = Bench(dut, cfg)
    await bench.reset()
    ctrl_after_reset = await bench.read(REG_CTRL)
    if not cfg.get("board", False):
        await bench.write(REG_GIE, 1)
        await bench.write(REG_IER, 1)

    conn = _connect(cfg["socket"])
    conn.send({"op": "ready", "ctrl_after_reset": ctrl_after_reset, "in_bits": bench.in_bits,
               "out_bits": bench.out_bits, "addr_bits": len(dut.s_axi_control_AWADDR),
               "cycle": _cycle()})
    while True:
        req = conn.recv()  # blocks the simulator, which is what a paused host means
        if req["op"] == "stop":
            break
        op = OPS.get(req["op"])
        rec = {"error": f"unknown request {req['op']!r}"} if op is None else await op(bench, req)
        rec["cycle"] = _cycle()
        conn.send(rec)
    for job in bench.jobs.values():
        if job is not None and job.task is not None:
            job.task.cancel()
    conn.close()
