"""AXI DMA 7.1 in direct register (simple) mode, register for register (PG021), in front of the
engine's two streams in the cocotb bench.

What software sees is the register map: per channel a control register (DMACR: RS, Reset,
interrupt enables), a status register (DMASR: Halted, Idle, DMAIntErr, DMASlvErr, DMADecErr,
IOC_Irq, Err_Irq), the address (and its upper half) and LENGTH, whose write starts a transfer.
MM2S reads the buffer from DDR and streams it to the engine as beats of the stream width, TLAST
on the last; S2MM writes the engine's beats to DDR until TLAST and reports the bytes in LENGTH.

PG021's rules, as modelled:
- out of reset (and after a soft reset) a channel is halted; RS=1 runs it, Idle stays 0 until
  its first transfer completes;
- LENGTH holds `c_sg_length_width` bits (bits above always read 0: a longer length is cut);
  writing 0, or writing while halted, has no effect;
- errors halt the channel (RS drops, Halted sets) and stay until a reset; Err_Irq and IOC_Irq
  are write-1-to-clear: DMAIntErr for an S2MM packet longer than its buffer, DMADecErr for an
  address no memory decodes;
- PG021/PG022 call a start while busy and an unaligned address without the realignment engine
  "undefined"/"unpredictable"; this model flags both as DMAIntErr and halts, so a driver that
  does either fails loudly here rather than silently on the board.

Simulated time moves only while the bench serves a request: a status read lets the simulation
run up to `poll_cycles` (about what a status read over PYNQ.remote takes on a board), or less
when the transfer completes sooner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["DMACR", "DMASR", "AxiDma", "Memory"]

# Register offsets within a channel, and the channels' bases (PG021, direct register mode).
DMACR, DMASR, ADDR, ADDR_MSB, LENGTH = 0x00, 0x04, 0x18, 0x1C, 0x28
_BASES = {"mm2s": 0x00, "s2mm": 0x30}
# DMACR bits
RS, RESET = 0x1, 0x4
# DMASR bits
HALTED, IDLE, INT_ERR, SLV_ERR, DEC_ERR, IOC_IRQ, ERR_IRQ = (0x1, 0x2, 0x10, 0x20, 0x40,
                                                              0x1000, 0x4000)
_W1C = IOC_IRQ | ERR_IRQ | 0x2000  # IOC, Dly (unused in simple mode), Err interrupts
_DMACR_RESERVED_ONE = 0x2  # bit 1 always reads 1 (PG021)


class Memory(Protocol):
    """DDR as the DMA's memory-mapped masters reach it; None/False: no memory decodes the
    address range."""

    def decodes(self, address: int, nbytes: int) -> bool: ...

    def read(self, address: int, nbytes: int) -> bytes | None: ...

    def write(self, address: int, data: bytes) -> bool: ...


@dataclass
class _Channel:
    name: str  # "mm2s" or "s2mm"
    beat_bytes: int  # stream width
    align: int  # memory-map width in bytes: the address alignment without DRE
    dmacr: int = 0
    dmasr: int = HALTED
    address: int = 0
    length: int = 0
    busy: bool = False  # a transfer is in flight on the bench
    log: list[str] = field(default_factory=list)  # why the channel stopped, for the operator

    @property
    def running(self) -> bool:
        return bool(self.dmacr & RS) and not self.dmasr & HALTED


class AxiDma:
    """The DMA cell: `read(offset)` / `write(offset, value)` on its AXI4-Lite slave.

    `request` is the bench's request channel (`sim.overlay._Bus.request`), `memory` the DDR.
    `params` is the DMA's CONFIG (`hls.plan.system.dma_properties`)."""

    def __init__(self, request: Callable[[dict[str, Any]], dict[str, Any]], memory: Memory,
                 params: dict[str, int], poll_cycles: int) -> None:
        self._request = request
        self._memory = memory
        self.poll_cycles = poll_cycles
        self.length_mask = (1 << params["c_sg_length_width"]) - 1
        self.channels = {
            "mm2s": _Channel("mm2s", params["c_m_axis_mm2s_tdata_width"] // 8,
                             params["c_m_axi_mm2s_data_width"] // 8),
            "s2mm": _Channel("s2mm", params["c_s_axis_s2mm_tdata_width"] // 8,
                             params["c_m_axi_s2mm_data_width"] // 8)}

    def _decode(self, offset: int) -> tuple[_Channel, int] | None:
        for name, base in _BASES.items():
            if base <= offset < base + 0x30:
                return self.channels[name], offset - base
        return None

    # ---- the AXI4-Lite slave ------------------------------------------------------------------
    def read(self, offset: int) -> int:
        hit = self._decode(offset)
        if hit is None:
            return 0
        ch, reg = hit
        if reg == DMASR:
            self._poll(ch)
            return ch.dmasr
        return {DMACR: ch.dmacr | _DMACR_RESERVED_ONE, ADDR: ch.address & 0xFFFF_FFFF,
                ADDR_MSB: ch.address >> 32, LENGTH: ch.length}.get(reg, 0)

    def write(self, offset: int, value: int) -> None:
        hit = self._decode(offset)
        if hit is None:
            return
        ch, reg = hit
        if reg == DMACR:
            self._control(ch, value)
        elif reg == DMASR:
            ch.dmasr &= ~(value & _W1C)
        elif reg == ADDR:
            ch.address = (ch.address & ~0xFFFF_FFFF) | value
        elif reg == ADDR_MSB:
            ch.address = (ch.address & 0xFFFF_FFFF) | (value << 32)
        elif reg == LENGTH:
            self._start(ch, value & self.length_mask)

    # ---- behaviour -----------------------------------------------------------------------------
    def _control(self, ch: _Channel, value: int) -> None:
        if value & RESET:  # a soft reset of either channel resets the whole core (PG021)
            self.reset()
            return
        ch.dmacr = value & ~RESET
        if value & RS:
            if not ch.dmasr & (INT_ERR | SLV_ERR | DEC_ERR):  # errors hold it halted
                ch.dmasr &= ~HALTED
        elif not ch.busy:
            ch.dmasr |= HALTED

    def reset(self) -> None:
        """Soft reset: both channels halted with their registers cleared; a transfer in flight
        is aborted (its stream stops where it is)."""
        for ch in self.channels.values():
            if ch.busy:
                self._request({"op": "cancel", "channel": ch.name})
            self.channels[ch.name] = _Channel(ch.name, ch.beat_bytes, ch.align)

    def _fail(self, ch: _Channel, bit: int, why: str) -> None:
        ch.dmasr = (ch.dmasr | bit | ERR_IRQ | HALTED) & ~IDLE
        ch.dmacr &= ~RS
        ch.log.append(why)

    def _start(self, ch: _Channel, length: int) -> None:
        ch.length = length
        if length == 0 or not ch.running:
            return  # PG021: no effect
        if ch.busy:
            self._fail(ch, INT_ERR, "LENGTH written while a transfer was in flight")
            return
        if ch.address % ch.align:
            self._fail(ch, INT_ERR, f"address {ch.address:#x} not aligned to the "
                                    f"{ch.align}-byte memory map (no realignment engine)")
            return
        if length % ch.beat_bytes:
            self._fail(ch, INT_ERR, f"{length} bytes is not a whole number of "
                                    f"{ch.beat_bytes}-byte stream beats")
            return
        if not self._memory.decodes(ch.address, length):
            self._fail(ch, DEC_ERR, f"no memory at [{ch.address:#x}, {ch.address + length:#x})")
            return
        ch.dmasr &= ~IDLE
        if ch.name == "mm2s":
            data = self._memory.read(ch.address, length)
            assert data is not None  # decoded above
            b = ch.beat_bytes
            beats = [int.from_bytes(data[i:i + b], "little") for i in range(0, length, b)]
            self._request({"op": "send", "beats": beats})
        else:
            self._request({"op": "recv", "max_beats": length // ch.beat_bytes})
        ch.busy = True

    def _poll(self, ch: _Channel) -> None:
        """Let the simulation run while software reads the status; record a completion."""
        if not ch.busy:
            return
        rec = self._request({"op": "wait", "channel": ch.name, "max_cycles": self.poll_cycles})
        if rec["done"]:
            self._complete(ch, rec)

    def _complete(self, ch: _Channel, rec: dict[str, Any]) -> None:
        ch.busy = False
        moved = int(rec["moved"]) * ch.beat_bytes
        if ch.name == "s2mm":
            b = ch.beat_bytes
            raw = b"".join(int(beat).to_bytes(b, "little") for beat in rec["beats"])
            self._memory.write(ch.address, raw)
            ch.length = moved  # PG021: S2MM_LENGTH reports the bytes actually received
            if rec["overflow"]:
                self._fail(ch, INT_ERR, f"the stream packet did not end (TLAST) within the "
                                        f"{moved}-byte buffer")
                return
        ch.dmasr |= IDLE | IOC_IRQ
        if not ch.dmacr & RS:
            ch.dmasr |= HALTED
