"""Client: misuse pynq's own AXI DMA driver and the DMA's registers, on a board-sim board.

    dma_misuse.py BITFILE DMA_CELL ENGINE_CELL LOAD_WORDS LOAD_BYTES ROW_BYTES OUT_BYTES

Prints one JSON line of observations (status registers, exception messages) for the test to
hold against PG021. The engine has a start-up-loaded weight RAM (LOAD_WORDS words of
LOAD_BYTES bytes), used as a known-good transfer; ROW_BYTES / OUT_BYTES are one row of layer 0
in and out.
"""

import json
import sys

import numpy as np
from pynq import MMIO, Overlay, allocate

DMACR, DMASR, SA, LENGTH = 0x00, 0x04, 0x18, 0x28
S2MM = 0x30
CTRL, ROWS, LAYER, MODE = 0x00, 0x10, 0x20, 0x28


def refused(call):
    try:
        call()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def load(engine, dma, buf, words):
    """A good transfer: the weight load streams `words` words into the engine's RAM."""
    engine.write(MODE, 1)
    engine.write(ROWS, words)
    dma.sendchannel.transfer(buf)
    engine.write(CTRL, 1)
    dma.sendchannel.wait()
    for _ in range(1000):
        if engine.read(CTRL) & 0x2:
            break
    engine.write(MODE, 0)
    return dma.sendchannel.transferred


def main() -> None:
    bitfile, dma_cell, engine_cell = sys.argv[1:4]
    words, word_bytes, row_bytes, out_bytes = map(int, sys.argv[4:8])
    ol = Overlay(bitfile)
    dma, engine = getattr(ol, dma_cell), getattr(ol, engine_cell)
    regs = MMIO(ol.ip_dict[dma_cell]["phys_addr"], 0x100)
    r = {"dma_driver": f"{type(dma).__module__}.{type(dma).__name__}",
         "max_size": dma.sendchannel._max_size, "after_start": regs.read(DMASR)}
    buf = allocate(shape=(words * word_bytes,), dtype=np.uint8)
    # pynq's own checks refuse before touching a register
    r["pynq_unaligned"] = refused(lambda: dma.sendchannel.transfer(buf, start=1, nbytes=32))
    r["pynq_too_long"] = refused(lambda: dma.sendchannel.transfer(buf, nbytes=(1 << 26)))
    # the registers: a length wider than the length field keeps only its low bits (here 0)
    regs.write(SA, buf.physical_address)
    regs.write(LENGTH, 1 << 26)
    r["length_over_width"] = {"length": regs.read(LENGTH), "status": regs.read(DMASR)}
    # an unaligned source address (no realignment engine)
    regs.write(SA, buf.physical_address + 1)
    regs.write(LENGTH, 32)
    r["unaligned"] = {"status": regs.read(DMASR), "control": regs.read(DMACR),
                      "error": dma.sendchannel.error, "wait": refused(dma.sendchannel.wait)}
    regs.write(LENGTH, 32)  # halted: LENGTH writes do nothing
    r["halted_length"] = regs.read(DMASR)
    regs.write(DMACR, 0x4)  # soft reset
    r["after_reset"] = [regs.read(DMASR), regs.read(S2MM + DMASR)]
    dma.sendchannel.start()
    dma.recvchannel.start()
    r["load_after_reset"] = load(engine, dma, buf, words)
    r["load_status"] = regs.read(DMASR)
    # start while busy: S2MM waits for a packet the idle engine never sends
    out = allocate(shape=(out_bytes,), dtype=np.uint8)
    dma.recvchannel.transfer(out)
    r["busy_status"] = regs.read(S2MM + DMASR)
    r["pynq_busy"] = refused(lambda: dma.recvchannel.transfer(out))
    regs.write(S2MM + LENGTH, out_bytes)
    r["busy_restart"] = {"status": regs.read(S2MM + DMASR), "wait": refused(
        dma.recvchannel.wait)}
    regs.write(S2MM + DMACR, 0x4)
    dma.sendchannel.start()
    dma.recvchannel.start()
    # a packet longer than the S2MM buffer: one row of layer 0 into a buffer of one beat
    row = allocate(shape=(row_bytes,), dtype=np.uint8)
    short = allocate(shape=(out_bytes // 2,), dtype=np.uint8)
    engine.write(LAYER, 0)
    engine.write(ROWS, 1)
    dma.recvchannel.transfer(short)
    dma.sendchannel.transfer(row)
    engine.write(CTRL, 1)
    dma.sendchannel.wait()
    r["overflow"] = {"wait": refused(dma.recvchannel.wait), "status": regs.read(S2MM + DMASR),
                     "length": regs.read(S2MM + LENGTH)}
    print(json.dumps(r))


if __name__ == "__main__":
    main()
