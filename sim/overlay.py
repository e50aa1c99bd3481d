"""A simulated PYNQ board: the `pynq` API the generated driver uses, backed by the RTL simulation.

The driver (design.md §7) is plain synchronous PYNQ code: `Overlay(bitfile)`, `allocate(...)`,
32-bit register access on the engine's AXI4-Lite slave, and the two channels of an AXI DMA in
simple mode (PG021). `SimPynq` offers exactly that surface, and behind it runs the cocotb bench
(`vitfpga.sim.tb.engine_tb`) on the emitted Verilog in Icarus or Verilator, through the same
simulator process `RtlSession` uses (`vitfpga.sim.rtl.SimProcess`). So the code a board runs is
the code tested here, with the board's concurrency: `transfer` starts a stream and returns, the
stream moves while later register accesses take their clock cycles, `wait` lets simulated time run
until the transfer is complete.

    with SimPynq(project_dir) as pynq:          # builds (once) and starts the simulator
        ol = pynq.Overlay("overlay/design.bit")  # the path is recorded, nothing is read
        buf = pynq.allocate(shape=(64,), dtype=np.uint8)
        ol.axi_dma_0.sendchannel.transfer(buf)
        ol.vitfpga_engine_0.write(0x00, 1)

Like a freshly configured board, the engine starts out of reset with its weight RAM (URAM) all
zeros and interrupts disabled: the driver must load the RAM part itself.

This stands in for the `pynq` module in the driver's own process (the PYNQ 2.7/3.0 boards, such
as the Pynq-Z2). For PYNQ 4.0, `sim.board_sim` serves the same RTL to the real pynq client over
PYNQ.remote, with the AXI DMA at register level (`sim.axi_dma`).
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, SupportsIndex

import numpy as np

from vitfpga.errors import VerificationFailed
from vitfpga.hls.plan.system import CELL_NAMES, DMA_LENGTH_BITS, ENGINE_TOP, WHOLE_TOP
from vitfpga.sim.rtl import ENGINE, Design, SimProcess
from vitfpga.sim.vit import VIT_DESIGN

RTL_DESIGNS = {ENGINE_TOP: ENGINE, WHOLE_TOP: VIT_DESIGN}  # the RTL behind system.json's `top`

__all__ = ["DEFAULT_MAX_CYCLES", "RTL_DESIGNS", "DmaChannel", "DmaError", "DmaTimeout",
           "SimBuffer", "SimDma", "SimIP", "SimOverlay", "SimPynq", "SystemInfo"]

# Clock cycles one DmaChannel.wait() lets the simulation run before it gives up: far more than the
# largest layer run (a DeiT-Small MLP layer at PE=8, SIMD=16 is ~1M cycles), still a bounded wait
# (tens of seconds of simulation) when the engine hangs.
DEFAULT_MAX_CYCLES = 5_000_000
# Reading a DMA status register over AXI4-Lite takes a few clocks on a board; polling `idle` lets
# the simulation run that long, so a `while not channel.idle` loop advances simulated time.
STATUS_READ_CYCLES = 4
PAGE = 4096  # fake physical addresses are page aligned, like CMA allocations
FIRST_ADDRESS = 0x1000_0000
AP_IDLE = 0x4


class DmaError(RuntimeError):
    """The DMA stopped with an error, as PYNQ's `wait()` reports a DMA internal error."""


class DmaTimeout(TimeoutError):
    """A DMA transfer did not complete within the channel's cycle limit (a hung engine)."""

    def __init__(self, message: str, channel: str, moved: int) -> None:
        super().__init__(message)
        self.channel = channel
        self.moved = moved  # beats that did move


# ---- the system around the engine -------------------------------------------------------------
@dataclass(frozen=True)
class SystemInfo:
    """What the driver may know of the block design: cell names, stream widths, DMA limits.

    Read from `project_dir/system.json` (`hls.plan.system.SystemSpec.to_json`); without it the
    default cell names (`CELL_NAMES`) and the widths the RTL itself has."""

    engine_cell: str
    dma_cell: str
    design: str
    in_bits: int | None  # None: take the RTL's s_axis width
    out_bits: int | None
    max_transfer: int  # bytes one DMA transfer may move
    top: str = ENGINE_TOP  # the design in rtl/: the host-offload engine or the whole model

    @property
    def rtl(self) -> Design:
        return RTL_DESIGNS[self.top]

    @classmethod
    def load(cls, project_dir: Path) -> SystemInfo:
        path = Path(project_dir) / "system.json"
        if not path.is_file():
            return cls(engine_cell=CELL_NAMES["engine"], dma_cell=CELL_NAMES["dma"],
                       design=Path(project_dir).name, in_bits=None, out_bits=None,
                       max_transfer=2**DMA_LENGTH_BITS - 1)
        data = json.loads(path.read_text())
        try:
            info = cls(engine_cell=str(data["engine_cell"]), dma_cell=str(data["dma_cell"]),
                       design=str(data["design"]), in_bits=int(data["in_bits"]),
                       out_bits=int(data["out_bits"]),
                       max_transfer=int(data.get("max_transfer", 2**DMA_LENGTH_BITS - 1)),
                       top=str(data.get("top", ENGINE_TOP)))
        except KeyError as e:
            raise VerificationFailed(f"{path} lacks the key {e.args[0]!r}") from None
        if info.top not in RTL_DESIGNS:
            raise VerificationFailed(f"{path}: unknown top {info.top!r} (one of "
                                     f"{', '.join(RTL_DESIGNS)})")
        return info


# ---- buffers ----------------------------------------------------------------------------------
@dataclass(eq=False)
class _Allocation:
    """One `allocate` call: the CPU's view of the memory, the DDR behind it, and its address.

    A cacheable buffer keeps the two apart: the DMA reads and writes `device`, the CPU `cpu`, and
    only `flush`/`invalidate` copy between them, so a driver that forgets one fails here as it
    would on a board. A coherent buffer has one memory for both."""

    physical: int
    virtual: int  # the CPU memory's address in this process, to place views inside it
    cpu: np.ndarray  # uint8, the whole allocation
    device: np.ndarray  # uint8; the same array as `cpu` when coherent
    coherent: bool
    freed: bool = False

    def span(self, view: np.ndarray) -> tuple[int, int]:
        """The byte range [lo, hi) of `view` inside this allocation."""
        lo = hi = view.__array_interface__["data"][0] - self.virtual
        for extent, stride in zip(view.shape, view.strides, strict=True):
            if extent == 0:
                return lo, lo
            if stride < 0:
                lo += (extent - 1) * stride
            else:
                hi += (extent - 1) * stride
        return lo, hi + view.itemsize


class SimBuffer(np.ndarray):
    """What `allocate` returns: a numpy array in "physically contiguous" memory with a physical
    address, like PYNQ's PynqBuffer. Views keep the allocation (and an offset address); arrays
    computed from it are ordinary memory without one."""

    _alloc: _Allocation | None = None

    def __array_finalize__(self, obj: np.ndarray | None) -> None:
        alloc = getattr(obj, "_alloc", None)
        if alloc is not None:
            offset = self.__array_interface__["data"][0] - alloc.virtual
            if not (0 <= offset < alloc.cpu.nbytes or (self.size == 0 and
                                                         offset == alloc.cpu.nbytes)):
                alloc = None  # a copy, not a view: new memory
        self._alloc = alloc

    # ---- PynqBuffer's attributes ------------------------------------------------------------
    @property
    def physical_address(self) -> int | None:
        if self._alloc is None:
            return None
        return self._alloc.physical + self.virtual_address - self._alloc.virtual

    device_address = physical_address

    @property
    def virtual_address(self) -> int:
        return int(self.__array_interface__["data"][0])

    @property
    def coherent(self) -> bool:
        return self._alloc is not None and self._alloc.coherent

    @property
    def cacheable(self) -> bool:
        return not self.coherent

    def flush(self) -> None:
        """Write this view's bytes from the CPU's cache to memory, where the DMA reads."""
        if self._alloc is not None and not self._alloc.coherent:
            lo, hi = self._alloc.span(self.view(np.ndarray))
            self._alloc.device[lo:hi] = self._alloc.cpu[lo:hi]

    def invalidate(self) -> None:
        """Drop this view's cached bytes so the CPU sees what the DMA wrote to memory."""
        if self._alloc is not None and not self._alloc.coherent:
            lo, hi = self._alloc.span(self.view(np.ndarray))
            self._alloc.cpu[lo:hi] = self._alloc.device[lo:hi]

    def freebuffer(self) -> None:
        """Give the memory back; the DMA refuses it afterwards."""
        if self._alloc is not None:
            self._alloc.freed = True

    def close(self) -> None:
        self.freebuffer()

    def __enter__(self) -> SimBuffer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.freebuffer()


class _Allocator:
    """Hands out buffers with distinct, page-aligned fake physical addresses."""

    def __init__(self) -> None:
        self._next = FIRST_ADDRESS

    def allocate(self, shape: int | Iterable[int], dtype: Any = np.uint8,
                 cacheable: bool = True) -> SimBuffer:
        root = np.zeros(shape, dtype=dtype)
        cpu = root.reshape(-1).view(np.uint8)
        buf = root.view(SimBuffer)
        address = self._next
        self._next += -(-max(root.nbytes, 1) // PAGE) * PAGE
        buf._alloc = _Allocation(physical=address, virtual=buf.virtual_address, cpu=cpu,
                                 device=cpu if not cacheable else np.zeros_like(cpu),
                                 coherent=not cacheable)
        return buf


# ---- the simulated hardware -------------------------------------------------------------------
class _Bus:
    """The request channel to the bench, with the simulated clock it reports."""

    def __init__(self, proc: SimProcess) -> None:
        self.proc = proc
        self.start_cycle = self.cycle = int(proc.hello["cycle"])
        self.closed = False

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.closed:
            raise RuntimeError("the simulated board is closed (the SimPynq context has ended)")
        rec = self.proc.request(message)
        self.cycle = int(rec.get("cycle", self.cycle))
        if "error" in rec:
            raise RuntimeError(f"{self.proc.sim} bench: {rec['error']}")
        return rec


class SimIP:
    """An IP's AXI4-Lite slave as PYNQ's DefaultIP/MMIO show it: 32-bit registers at byte
    offsets, each access a real handshake on the simulated bus (a few clock cycles)."""

    def __init__(self, bus: _Bus, name: str, addr_bits: int) -> None:
        self._bus = bus
        self.name = name
        self.addr_range = 1 << addr_bits

    @property
    def mmio(self) -> SimIP:
        """PYNQ's `ip.mmio`: the same read/write."""
        return self

    def _check(self, offset: SupportsIndex) -> int:
        offset = operator.index(offset)
        if offset < 0 or offset + 4 > self.addr_range:
            raise ValueError(f"{self.name}: register offset {offset:#x} is outside its "
                             f"{self.addr_range}-byte register space")
        if offset % 4:
            raise MemoryError(f"{self.name}: unaligned access: offset {offset:#x} must be a "
                              f"multiple of 4")
        return offset

    def read(self, offset: SupportsIndex = 0, length: int = 4) -> int:
        if length != 4:
            raise ValueError(f"{self.name}: only 32-bit reads (length=4) exist on this bus")
        return int(self._bus.request({"op": "read", "addr": self._check(offset)})["data"])

    def write(self, offset: SupportsIndex, value: SupportsIndex) -> None:
        addr = self._check(offset)
        data = operator.index(value)
        if not 0 <= data < 2**32:
            raise ValueError(f"{self.name}: {data} does not fit a 32-bit register")
        self._bus.request({"op": "write", "addr": addr, "data": data})


@dataclass
class _Transfer:
    array: SimBuffer
    offset: int  # byte offset of the transfer in the allocation's memory
    nbytes: int


class DmaChannel:
    """One channel of an AXI DMA in simple mode, as PYNQ's `_SDMAChannel` drives it.

    `sendchannel` (MM2S) streams a buffer's bytes to the engine's s_axis as beats of the stream
    width, byte 0 in bits [7:0] of the first beat, TLAST on the last; `recvchannel` (S2MM) writes
    the engine's m_axis beats to a buffer in order until TLAST. `transfer` returns at once."""

    def __init__(self, bus: _Bus, name: str, channel: str, beat_bytes: int, max_size: int,
                 max_cycles: int) -> None:
        self._bus = bus
        self.name = name  # "dma.sendchannel", for messages
        self._channel = channel  # the bench's name: "mm2s" or "s2mm"
        self.beat_bytes = beat_bytes
        self.max_size = max_size
        self.max_cycles = max_cycles  # one wait() gives up after this many clock cycles
        self.transferred = 0  # bytes the last completed transfer moved (set by wait)
        self._pending: _Transfer | None = None  # in flight on the bench
        self._active: SimBuffer | None = None  # the last transfer's buffer
        self._error: str | None = None  # how the last transfer failed, until wait() says it

    @property
    def _sends(self) -> bool:
        return self._channel == "mm2s"

    @property
    def running(self) -> bool:
        return True  # PYNQ starts both channels when it binds the driver

    @property
    def error(self) -> bool:
        return self._error is not None

    @property
    def idle(self) -> bool:
        """True when no transfer is in flight. Like reading the status register on a board, a
        poll while one is takes simulated time, so polling loops make progress."""
        if self._pending is None:
            return True
        rec = self._bus.request({"op": "wait", "channel": self._channel,
                                 "max_cycles": STATUS_READ_CYCLES})
        if rec["done"]:
            self._finish(rec)
        return self._pending is None

    def transfer(self, array: SimBuffer, start: int = 0, nbytes: int = 0) -> None:
        """Start moving `nbytes` of `array` from byte `start` (0: the rest of the array)."""
        alloc = getattr(array, "_alloc", None)
        if not isinstance(array, SimBuffer) or alloc is None:
            raise TypeError(f"{self.name}: DMA needs a buffer from allocate() (physically "
                            f"contiguous, with a physical address), got {type(array).__name__}")
        if alloc.freed:
            raise ValueError(f"{self.name}: the buffer was freed")
        if not array.flags.c_contiguous:
            raise ValueError(f"{self.name}: the array is not contiguous")
        start, nbytes = operator.index(start), operator.index(nbytes)
        if start < 0 or nbytes < 0:
            raise ValueError(f"{self.name}: start and nbytes must not be negative")
        if nbytes == 0:
            nbytes = array.nbytes - start
        if nbytes <= 0:
            raise ValueError(f"{self.name}: transfer size is {nbytes} bytes")
        if nbytes > self.max_size:
            raise ValueError(f"{self.name}: transfer size is {nbytes} bytes, which exceeds the "
                             f"maximum DMA buffer size {self.max_size}")
        if start + nbytes > array.nbytes:
            raise ValueError(f"{self.name}: bytes [{start}, {start + nbytes}) lie outside the "
                             f"{array.nbytes}-byte array")
        if nbytes % self.beat_bytes:
            raise ValueError(f"{self.name}: {nbytes} bytes is not a whole number of "
                             f"{self.beat_bytes}-byte stream beats")
        address = array.physical_address
        assert address is not None
        if (address + start) % self.beat_bytes:
            raise RuntimeError(f"{self.name}: DMA does not support unaligned transfers; the "
                               f"start address must be aligned to {self.beat_bytes} bytes")
        if self._error is not None:
            raise DmaError(f"{self.name}: halted by the error of its last transfer "
                           f"({self._error}); wait() reports it")
        if not self.idle:
            raise RuntimeError(f"{self.name}: DMA channel not idle")
        offset = address - alloc.physical + start
        beats = nbytes // self.beat_bytes
        if self._sends:
            array.flush()  # PYNQ flushes before MM2S reads memory
            raw = alloc.device[offset:offset + nbytes].tobytes()
            b = self.beat_bytes
            self._bus.request({"op": "send", "beats": [
                int.from_bytes(raw[i * b:(i + 1) * b], "little") for i in range(beats)]})
        else:
            self._bus.request({"op": "recv", "max_beats": beats})
        self._pending = _Transfer(array, offset, nbytes)
        self._active = array
        self.transferred = 0

    def wait(self) -> None:
        """Block until the transfer is complete (the simulation runs meanwhile). Raises
        DmaTimeout after `max_cycles` cycles without completion (the transfer stays in flight)
        and DmaError when the DMA stopped with an error."""
        pending = self._pending
        if pending is not None:
            rec = self._bus.request({"op": "wait", "channel": self._channel,
                                     "max_cycles": self.max_cycles})
            if not rec["done"]:
                total = pending.nbytes // self.beat_bytes
                what = (f"sent {rec['moved']} of {total} beats" if self._sends else
                        f"received {rec['moved']} beats into a buffer of {total}, no TLAST yet")
                raise DmaTimeout(f"{self.name}: the transfer did not complete within "
                                 f"{self.max_cycles} clock cycles; it {what}",
                                 self.name, int(rec["moved"]))
            self._finish(rec)
        if self._error is not None:
            error, self._error = self._error, None
            raise DmaError(f"{self.name}: {error}")
        if not self._sends and self._active is not None:
            self._active.invalidate()  # PYNQ invalidates after S2MM, so the CPU sees the data

    def _finish(self, rec: dict[str, Any]) -> None:
        """Record a completed transfer; S2MM beats land in the buffer's memory."""
        pending, self._pending = self._pending, None
        assert pending is not None
        moved = int(rec["moved"])
        self.transferred = moved * self.beat_bytes
        if not self._sends:
            b = self.beat_bytes
            raw = b"".join(int(beat).to_bytes(b, "little") for beat in rec["beats"])
            alloc = pending.array._alloc
            assert alloc is not None
            alloc.device[pending.offset:pending.offset + len(raw)] = np.frombuffer(raw, np.uint8)
            if rec["overflow"]:
                self._error = (f"DMA internal error: the stream filled the {pending.nbytes}-byte "
                               f"buffer ({moved} beats) before TLAST")


class SimDma:
    """An AXI DMA cell: `sendchannel` (memory to the engine) and `recvchannel` (back)."""

    def __init__(self, bus: _Bus, name: str, in_bits: int, out_bits: int, max_size: int,
                 max_cycles: int) -> None:
        self.name = name
        self.buffer_max_size = max_size
        self.sendchannel = DmaChannel(bus, f"{name}.sendchannel", "mm2s", in_bits // 8,
                                      max_size, max_cycles)
        self.recvchannel = DmaChannel(bus, f"{name}.recvchannel", "s2mm", out_bits // 8,
                                      max_size, max_cycles)


class SimOverlay:
    """The loaded design: one attribute per block-design cell, as a PYNQ Overlay has them.
    A name that is not a cell is an AttributeError listing the cells there are."""

    def __init__(self, bitfile: str, cells: dict[str, SimIP | SimDma]) -> None:
        self.bitfile_name = bitfile
        self._cells = cells

    @property
    def ip_dict(self) -> dict[str, dict[str, str]]:
        return {name: {"fullpath": name, "type": type(cell).__name__}
                for name, cell in self._cells.items()}

    def is_loaded(self) -> bool:
        return True

    def __getattr__(self, name: str) -> SimIP | SimDma:
        cells = self.__dict__.get("_cells", {})
        if name in cells:
            return cells[name]
        raise AttributeError(f"overlay {self.__dict__.get('bitfile_name')!r} has no cell "
                             f"{name!r}; its cells are {', '.join(sorted(cells))}")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._cells})


class SimPynq:
    """The `pynq` module a driver gets in simulation: `Overlay` and `allocate`, with the RTL
    simulation of `project_dir/rtl` as the hardware.

    A context manager: entering builds the simulator (once per `build_dir`, default
    `project_dir/build`) and starts it, leaving stops it. `max_cycles` bounds each DMA `wait()`;
    `stress` adds random stalls on both streams (from `seed`), like a busy memory system.
    One Overlay per session: a second would be a reconfigured board, which needs a fresh
    simulator (the weight RAM powers up empty), so start a new SimPynq for that."""

    def __init__(self, project_dir: Path, sim: str = "verilator", build_dir: Path | None = None,
                 max_cycles: int = DEFAULT_MAX_CYCLES, *, stress: bool = False,
                 seed: int = 0) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.sim = sim
        self.build_dir = Path(build_dir if build_dir is not None
                              else self.project_dir / "build").resolve()
        self.max_cycles = max_cycles
        self.stress, self.seed = stress, seed
        self.system = SystemInfo.load(self.project_dir)
        self.overlay: SimOverlay | None = None
        self._allocator = _Allocator()
        self._proc: SimProcess | None = None
        self._bus: _Bus | None = None

    # ---- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> SimPynq:
        proc = SimProcess(self.project_dir / "rtl", self.sim, self.build_dir / self.sim,
                          {"board": True, "stress": self.stress, "seed": self.seed},
                          self.system.rtl)
        proc.__enter__()
        try:
            self._check(proc.hello)
        except BaseException as e:
            proc.__exit__(type(e), e, e.__traceback__)
            raise
        self._proc, self._bus = proc, _Bus(proc)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc, self._proc = self._proc, None
        if self._bus is not None:
            self._bus.closed = True
        if proc is not None:
            proc.__exit__(exc_type, exc, tb)

    def _check(self, hello: dict[str, Any]) -> None:
        """The RTL must be the design system.json describes, and idle out of reset."""
        if not hello["ctrl_after_reset"] & AP_IDLE:
            raise VerificationFailed(f"{self.sim}: engine not idle after reset "
                                     f"(ctrl={hello['ctrl_after_reset']:#x})")
        for key, port in (("in_bits", "s_axis_TDATA"), ("out_bits", "m_axis_TDATA")):
            said = getattr(self.system, key)
            if said is not None and said != hello[key]:
                raise VerificationFailed(f"{self.project_dir / 'system.json'} says {key}={said}, "
                                         f"but the RTL's {port} is {hello[key]} bits wide")

    @property
    def cycles(self) -> int:
        """Simulated clock cycles since the board came out of reset."""
        return 0 if self._bus is None else self._bus.cycle - self._bus.start_cycle

    # ---- the pynq API ---------------------------------------------------------------------------
    def Overlay(self, bitfile: str | os.PathLike[str], download: bool = True,
                **kwargs: object) -> SimOverlay:
        """Load the design. There is no bitstream to check: the path is only recorded. PYNQ's
        other options (`download`, `ignore_version`, ...) mean nothing here and are ignored."""
        if self._proc is None or self._bus is None:
            raise RuntimeError("the simulated board is not running; use `with SimPynq(...)`")
        if self.overlay is not None:
            raise RuntimeError(f"an overlay ({self.overlay.bitfile_name}) is already loaded; a "
                               f"new one needs a new SimPynq (a freshly configured board)")
        hello, s = self._proc.hello, self.system
        cells: dict[str, SimIP | SimDma] = {
            s.engine_cell: SimIP(self._bus, s.engine_cell, int(hello["addr_bits"])),
            s.dma_cell: SimDma(self._bus, s.dma_cell, int(hello["in_bits"]),
                               int(hello["out_bits"]), s.max_transfer, self.max_cycles),
        }
        self.overlay = SimOverlay(os.fspath(bitfile), cells)
        return self.overlay

    def allocate(self, shape: int | Iterable[int], dtype: Any = np.uint8, target: object = None,
                 *, cacheable: bool = True) -> SimBuffer:
        """A zeroed buffer with a physical address. Cacheable (the default) means the DMA sees
        only what was flushed and the CPU only what was invalidated (PYNQ's DMA driver does
        both around a transfer); `cacheable=False` gives coherent memory."""
        return self._allocator.allocate(shape, dtype, cacheable)
