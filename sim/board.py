"""The simulated Zynq board behind `vitfpga board-sim`: what a PYNQ.remote server reaches.

One `Board` holds the board's state: its files (the few a PYNQ client reads, the firmware it
writes), its DDR (buffers by id, as `allocate` makes them, with the CPU cache kept apart from
memory), the programmable logic (unprogrammed until a bitstream of the project is downloaded;
then the project's RTL in the cocotb bench, a fresh simulation per download) and the physical
address map the project's block design gives it (system.json): the engine's AXI4-Lite slave,
the AXI DMA (`sim.axi_dma`, register level) and the AXI GPIO `leds`.

Every method runs under one lock: gRPC serves calls on several threads, the board is one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitfpga.errors import BadInput, VerificationFailed
from vitfpga.hls.plan.system import WHOLE_TOP, SystemSpec, dma_properties
from vitfpga.sim.axi_dma import AxiDma
from vitfpga.sim.bitfile import bin_fingerprint, rtl_fingerprint
from vitfpga.sim.overlay import AP_IDLE, PAGE, RTL_DESIGNS, _Bus
from vitfpga.sim.rtl import SimProcess

__all__ = ["FIRMWARE", "FPGA_MANAGER", "Board", "BoardError", "Pl", "read_spec"]

FIRMWARE = "/lib/firmware/"
FPGA_MANAGER = "/sys/class/fpga_manager/fpga0/"
DDR_BASE = 0x1000_0000  # where the first buffer goes (CMA sits in the low DDR on both families)
_ARCH = {"zynq7": "armv7l", "zynqmp": "aarch64"}


class BoardError(RuntimeError):
    """What a board would answer with an error: the message goes back to the client."""


def read_spec(project: Path) -> SystemSpec:
    """The project's system (system.json), or one clear line why it is not a PYNQ project."""
    path = Path(project) / "system.json"
    if not path.is_file():
        raise BadInput(f"{project} is not a generated project (no system.json): make one with "
                       f"`vitfpga generate`")
    try:
        return SystemSpec(**json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise BadInput(f"{path} is not a system description vitfpga wrote ({e})") from None


@dataclass
class _Buffer:
    """One allocation: the CPU's view (what BufferWrite/Read move) and the memory (what the
    DMA reads and writes); flush and invalidate copy between them."""

    physical: int
    cpu: bytearray
    memory: bytearray
    dtype: str


@dataclass
class Ddr:
    """The board's DDR as allocations; addresses outside every allocation decode nowhere."""

    buffers: dict[str, _Buffer] = field(default_factory=dict)
    next_address: int = DDR_BASE
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def allocate(self, size: int, dtype: str) -> str:
        if size <= 0:
            raise BoardError(f"cannot allocate {size} bytes")
        key = f"buffer-{next(self.ids)}"
        self.buffers[key] = _Buffer(self.next_address, bytearray(size), bytearray(size), dtype)
        self.next_address += -(-size // PAGE) * PAGE
        return key

    def get(self, key: str) -> _Buffer:
        if key not in self.buffers:
            raise BoardError(f"no buffer {key!r} (freed, or never allocated)")
        return self.buffers[key]

    def _find(self, address: int, nbytes: int) -> tuple[_Buffer, int] | None:
        for buf in self.buffers.values():
            lo = address - buf.physical
            if lo >= 0 and lo + nbytes <= len(buf.memory):
                return buf, lo
        return None

    def decodes(self, address: int, nbytes: int) -> bool:
        return self._find(address, nbytes) is not None

    def read(self, address: int, nbytes: int) -> bytes | None:
        hit = self._find(address, nbytes)
        return None if hit is None else bytes(hit[0].memory[hit[1]:hit[1] + nbytes])

    def write(self, address: int, data: bytes) -> bool:
        hit = self._find(address, len(data))
        if hit is not None:
            hit[0].memory[hit[1]:hit[1] + len(data)] = data
        return hit is not None


@dataclass(frozen=True)
class _ClockUnit:
    """Where a family's PS keeps its PL clock controls (Zynq-7000 TRM UG585 SLCR, Zynq
    UltraScale+ UG1087 CRL_APB/CRF_APB), with the fields pynq's `Clocks` reads and writes."""

    windows: tuple[tuple[int, int], ...]  # (base, bytes) of the register blocks
    reset: dict[int, int]  # absolute address -> value out of reset (the PLLs already locked)
    ref_mhz: float  # PS reference clock
    pl_ctrl: tuple[int, ...]  # PL clock 0..3 control registers
    pll_of_source: tuple[int | None, ...]  # SRCSEL -> PLL control register


def _zynq7_pll(fdiv: int) -> int:
    return fdiv << 12  # PLL_FDIV [18:12]


def _zynqmp_pll(fbdiv: int) -> int:
    return fbdiv << 8 | 1 << 16  # FBDIV [14:8], DIV2 [16]


_CLOCKS = {
    # 50 MHz PS clock; IO PLL 1000 MHz, ARM PLL 1300, DDR PLL 1050; FCLK0 = IO PLL / 10 / 1.
    "zynq7": _ClockUnit(
        windows=((0xF800_0000, 0x1000),),
        reset={0xF800_0100: _zynq7_pll(26), 0xF800_0104: _zynq7_pll(21),
               0xF800_0108: _zynq7_pll(20), 0xF800_0170: 1 << 20 | 10 << 8},
        ref_mhz=50.0, pl_ctrl=(0xF800_0170, 0xF800_0180, 0xF800_0190, 0xF800_01A0),
        pll_of_source=(0xF800_0108, 0xF800_0108, 0xF800_0100, 0xF800_0104)),
    # 33.333 MHz PS clock; IOPLL 1500 MHz, RPLL 1200, APLL 1200, DPLL 1066;
    # PL0 = IOPLL / 15 / 1, clock active.
    "zynqmp": _ClockUnit(
        windows=((0xFF5E_0000, 0x1000), (0xFD1A_0000, 0x1000)),
        reset={0xFF5E_0020: _zynqmp_pll(90), 0xFF5E_0030: _zynqmp_pll(72),
               0xFD1A_0020: _zynqmp_pll(72), 0xFD1A_002C: _zynqmp_pll(64),
               0xFD1A_0060: 1 << 8, 0xFF5E_00C0: 1 << 24 | 1 << 16 | 15 << 8},
        ref_mhz=33.333, pl_ctrl=(0xFF5E_00C0, 0xFF5E_00C4, 0xFF5E_00C8, 0xFF5E_00CC),
        pll_of_source=(0xFF5E_0020, None, 0xFF5E_0030, 0xFD1A_002C)),
}


class PsRegisters:
    """The PS clock-control registers PYNQ programs when it loads an overlay (the PL clocks
    its .hwh asks for), as a register file with the PLLs' values out of reset."""

    def __init__(self, family: str) -> None:
        self.unit = _CLOCKS[family]
        self.family = family
        self.values = dict(self.unit.reset)

    def contains(self, base: int, length: int) -> bool:
        return any(lo <= base and base + length <= lo + size for lo, size in self.unit.windows)

    def read(self, address: int) -> int:
        return self.values.get(address, 0)

    def write(self, address: int, value: int) -> None:
        self.values[address] = value & 0xFFFF_FFFF

    def pl_clock_mhz(self, index: int) -> float:
        """PL clock `index` as its control register and source PLL set it."""
        ctrl = self.read(self.unit.pl_ctrl[index])
        if self.family == "zynq7":
            src, div0, div1 = ctrl >> 4 & 0x3, ctrl >> 8 & 0x3F, ctrl >> 20 & 0x3F
            pll = self.read(self.unit.pll_of_source[src])
            vco = self.unit.ref_mhz * (pll >> 12 & 0x7F)
        else:
            src, div0, div1 = ctrl & 0x7, ctrl >> 8 & 0x3F, ctrl >> 16 & 0x3F
            address = self.unit.pll_of_source[src] if src < 4 else None
            pll = 0 if address is None else self.read(address)
            vco = self.unit.ref_mhz * (pll >> 8 & 0x7F) / (2 if pll >> 16 & 1 else 1)
        return round(vco / max(div0 * div1, 1), 3)


class Gpio:
    """AXI GPIO (PG144) with one all-output channel: GPIO_DATA reads back what was written."""

    def __init__(self, bits: int, on_change: Callable[[int], None]) -> None:
        self.mask, self.value, self.on_change = (1 << bits) - 1, 0, on_change

    def read(self, offset: int) -> int:
        return self.value if offset == 0 else 0

    def write(self, offset: int, value: int) -> None:
        if offset == 0 and value & self.mask != self.value:
            self.value = value & self.mask
            self.on_change(self.value)


class Pl:
    """The programmed logic: the bench running the project's RTL, and the cells it exposes."""

    def __init__(self, board: Board) -> None:
        b = board
        self.proc = SimProcess(b.project / "rtl", b.sim, b.build_dir / b.sim,
                               {"board": True, "stress": False, "seed": 0}, b.rtl)
        self.proc.__enter__()
        hello = self.proc.hello
        if not hello["ctrl_after_reset"] & AP_IDLE:
            self.close()
            raise BoardError(f"the engine is not idle after reset (ctrl="
                             f"{hello['ctrl_after_reset']:#x})")
        self.bus = _Bus(self.proc)
        self.engine_range = 1 << int(hello["addr_bits"])
        self.dma = AxiDma(self.bus.request, b.ddr, dma_properties(b.spec), b.poll_cycles)
        self.gpio = Gpio(b.spec.gpio_bits, b.leds_changed)

    def close(self) -> None:
        with contextlib.suppress(VerificationFailed):  # a reprogrammed board drops its state
            self.proc.__exit__(None, None, None)


class Board:
    """The simulated board: files, DDR, the programmable logic and its address map."""

    def __init__(self, project: Path, sim: str, build_dir: Path, poll_cycles: int,
                 log: Callable[[str], None] = print) -> None:
        self.project = Path(project).resolve()
        self.spec = read_spec(self.project)
        if self.spec.ps != "zynqmp":
            # pynq 4.0 removed Zynq-7000 support: its Overlay cannot even set a Zynq-7000 PL
            # clock from the .hwh (it reads the Zynq UltraScale+ parameter), real or simulated.
            raise BadInput(f"{self.spec.board} is a Zynq-7000 board, which PYNQ 4.0 (the release "
                           f"with PYNQ.remote) no longer supports: board-sim serves Zynq "
                           f"UltraScale+ projects (e.g. --board kv260); a {self.spec.board} runs "
                           f"PYNQ 2.7 or 3.0 on the board itself")
        if self.spec.top not in RTL_DESIGNS:
            raise BadInput(f"{self.project / 'system.json'}: unknown top {self.spec.top!r} (one "
                           f"of {', '.join(RTL_DESIGNS)})")
        self.rtl = RTL_DESIGNS[self.spec.top]
        if self.spec.top == WHOLE_TOP and sim != "verilator":
            # the whole model's operand buffer starts X in Icarus (docs/vit.md): Verilator only
            raise BadInput(f"{self.spec.design} is the whole-model design, which simulates on "
                           f"Verilator only: use --sim verilator")
        self.sim, self.build_dir, self.poll_cycles = sim, Path(build_dir), poll_cycles
        self.fingerprint = rtl_fingerprint(self.project / "rtl")
        self.log = log
        self.lock = threading.RLock()
        self.ddr = Ddr()
        self.pl: Pl | None = None
        self.programmed: str | None = None  # the design name of the loaded bitstream
        self.binfile = ""  # the name set_bitstream_attrs gave the next download
        self.ps = PsRegisters(self.spec.ps)
        self.files: dict[str, bytes] = self._boot_files()

    def _boot_files(self) -> dict[str, bytes]:
        arch = _ARCH[self.spec.ps]
        return {
            "/proc/version": f"Linux version 6.6.40-xilinx (vitfpga board-sim) #1 SMP "
                             f"{arch}\n".encode(),
            "/proc/device-tree/chosen/pynq_board": self.spec.board.encode() + b"\x00",
            FPGA_MANAGER + "state": b"operating\n",
            FPGA_MANAGER + "flags": b"0\n",
        }

    # ---- files --------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        return path in self.files or any(f.startswith(path.rstrip("/") + "/")
                                         for f in self.files)

    def read_file(self, path: str) -> bytes:
        if path not in self.files:
            raise FileNotFoundError(f"{path}: no such file on the simulated board")
        return self.files[path]

    def write_file(self, path: str, data: bytes) -> None:
        if path == FPGA_MANAGER + "firmware":
            self.program(data.decode("ascii", "replace").strip())
        self.files[path] = data

    # ---- programming ----------------------------------------------------------------------------
    def program(self, name: str) -> None:
        """fpga_manager: configure the PL from /lib/firmware/<name>. Only the simulated
        bitstream of this project configures it; anything else fails, and (as configuration
        clears the PL first) leaves it unprogrammed."""
        self.unprogram()
        data = self.files.get(FIRMWARE + name)
        if data is None:
            raise BoardError(f"fpga_manager: no firmware {FIRMWARE + name}")
        found = bin_fingerprint(data)
        if found is None:
            raise BoardError(f"fpga_manager: {name} is not a bitstream this simulated board "
                             f"runs (only the .bit `vitfpga board-sim` writes for the project)")
        design, fingerprint = found
        if (design, fingerprint) != (self.spec.design, self.fingerprint):
            raise BoardError(f"fpga_manager: {name} is design {design!r} built from other RTL "
                             f"({fingerprint[:12]}, this project's is {self.fingerprint[:12]}); "
                             f"use the .bit `vitfpga board-sim` wrote for {self.project}")
        self.log(f"board-sim: programming the PL with {name} ({self.sim} simulation of "
                 f"{self.spec.top})")
        self.pl = Pl(self)
        self.programmed = design

    def unprogram(self) -> None:
        if self.pl is not None:
            self.pl.close()
        self.pl, self.programmed = None, None

    def leds_changed(self, value: int) -> None:
        lamps = "".join("*" if value >> i & 1 else "." for i in range(self.spec.gpio_bits))
        self.log(f"board-sim: leds {lamps}")

    # ---- the physical address map --------------------------------------------------------------
    def window(self, base: int, length: int) -> str:
        """The cell whose registers [base, base+length) fall in: 'engine', 'dma', 'gpio', or
        'ps' (the PS's clock controls)."""
        s = self.spec
        if self.ps.contains(base, length):
            return "ps"
        for cell, lo, size in (("engine", s.ctrl_base, s.ctrl_range),
                               ("dma", s.dma_base, s.dma_range),
                               ("gpio", s.gpio_base, s.gpio_range)):
            if lo <= base and base + length <= lo + size:
                return cell
        raise BoardError(f"no IP at [{base:#x}, {base + length:#x}) in {s.design}'s address "
                         f"map (engine {s.ctrl_base:#x}, DMA {s.dma_base:#x}, GPIO "
                         f"{s.gpio_base:#x})")

    def _cell(self, address: int) -> tuple[Any, int]:
        cell = self.window(address, 4)
        if cell == "ps":
            return self.ps, address
        if self.pl is None:
            raise BoardError(f"access to {address:#x}: the PL is not programmed (download the "
                             f"overlay first)")
        base = {"engine": self.spec.ctrl_base, "dma": self.spec.dma_base,
                "gpio": self.spec.gpio_base}[cell]
        return {"engine": self.pl, "dma": self.pl.dma, "gpio": self.pl.gpio}[cell], address - base

    def mmio_read(self, address: int) -> int:
        target, offset = self._cell(address)
        if target is self.pl:
            return self._engine(offset, None)
        return int(target.read(offset))

    def mmio_write(self, address: int, value: int) -> None:
        target, offset = self._cell(address)
        if target is self.pl:
            self._engine(offset, value)
        else:
            target.write(offset, value)

    def _engine(self, offset: int, value: int | None) -> int:
        assert self.pl is not None
        if offset >= self.pl.engine_range:
            raise BoardError(f"engine register {offset:#x} is outside its "
                             f"{self.pl.engine_range}-byte register space")
        if value is None:
            return int(self.pl.bus.request({"op": "read", "addr": offset})["data"])
        self.pl.bus.request({"op": "write", "addr": offset, "data": value})
        return 0

    @property
    def cycles(self) -> int:
        """Simulated clock cycles since the PL was last programmed."""
        return 0 if self.pl is None else self.pl.bus.cycle - self.pl.bus.start_cycle

    def close(self) -> None:
        with self.lock:
            self.unprogram()
