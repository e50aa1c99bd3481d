"""The simulated PYNQ board (vitfpga.sim.overlay) against the real RTL simulation, no mocks.

A small driver written here with nothing but PYNQ calls (`Overlay`, `allocate`, register
read/write, DMA transfer/wait) loads the engine's weight RAM and runs layers, bit-exact against
the golden; the board must start with that RAM empty and must refuse misuse loudly. One design
(PE=4, SIMD=8, the first layer's weights in the ROM, the others in the RAM) is emitted per module
and built once per simulator; every session after that reuses the build.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import random_layer, random_rows, sim_params
from vitfpga.hls.emit.rtl import MEM_FILES, emit_rtl
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import LayerSlot, ModelPlan, engine_latency, fixed_plan
from vitfpga.hls.plan.layout import pad_input, unpad_output
from vitfpga.hls.plan.system import CELL_NAMES, ENGINE_REGS, system_spec
from vitfpga.ir import IntLinear
from vitfpga.runtime.model import linear_golden
from vitfpga.sim.overlay import DmaChannel, DmaError, DmaTimeout, SimDma, SimIP, SimPynq

PE, SIMD = 4, 8
# (K, N, weight bits, relu, codec): padded K and N in the last two; the last is 2:4 sparse, so
# its rows are twice its compute folds in beats (6-bit elements: the others pack 4- and 3-bit
# ones into 6-bit lanes, some straddling two words).
SHAPES = [(32, 24, 4, False, "dense"), (20, 12, 3, True, "dense"), (16, 8, 4, False, "nm:2:4")]
ROM_WORDS = 16  # exactly layer 0: layers 1 and 2 live in the RAM the driver loads
# Cell names in this project's system.json: not the defaults, so they must come from the file.
ENGINE, DMA = "engine_under_test", "dma_under_test"
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4


@dataclass(frozen=True)
class Project:
    dir: Path  # rtl/ and system.json
    bare: Path  # the same rtl/ without system.json: default cell names
    build: Path
    plan: ModelPlan
    layers: list[IntLinear]


def design(board: str) -> tuple[dict[str, IntLinear], ModelPlan]:
    """The layers of SHAPES (seeded) and their plan on `board` (the RTL is the same on every
    board: tests/sim/test_board_sim.py runs this design too)."""
    layers = {f"blocks.{i}.fc": random_layer(k, n, bits=bits, relu=relu, seed=40 + i,
                                             name=f"blocks.{i}.fc", codec=codec)
              for i, (k, n, bits, relu, codec) in enumerate(SHAPES)}
    plan = fixed_plan(layers, dict.fromkeys(layers, 4), get_board(board), PE, SIMD, ROM_WORDS)
    return layers, plan


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("overlay")
    layers, plan = design("pynq-z2")
    board = get_board("pynq-z2")
    for d in ("project", "bare"):
        emit_rtl(plan, layers, root / d)
    spec = replace(system_spec(plan, board, "overlay test"), engine_cell=ENGINE, dma_cell=DMA)
    (root / "project" / "system.json").write_text(spec.to_json())
    return Project(root / "project", root / "bare", root / "build", plan, list(layers.values()))


# ---- a driver: PYNQ calls only ------------------------------------------------------------------
def wait_done(engine: SimIP) -> int:
    """Poll ap_done; return the engine's `cycles` register."""
    for _ in range(1000):
        if engine.read(ENGINE_REGS["ctrl"]) & AP_DONE:
            return engine.read(ENGINE_REGS["cycles"])
    raise AssertionError("the engine never signalled done")


def load_weights(pynq: SimPynq, engine: SimIP, dma: SimDma, words: list[int],
                 bytes_per_word: int) -> int:
    """The weight load (docs/engine.md): each word as its beats, low bytes first."""
    data = b"".join(w.to_bytes(bytes_per_word, "little") for w in words)
    with pynq.allocate(shape=(len(data),), dtype=np.uint8) as buf:
        buf[:] = np.frombuffer(data, dtype=np.uint8)
        engine.write(ENGINE_REGS["mode"], 1)
        engine.write(ENGINE_REGS["rows"], len(words))
        dma.sendchannel.transfer(buf)
        engine.write(ENGINE_REGS["ctrl"], AP_START)
        dma.sendchannel.wait()
        cycles = wait_done(engine)
        engine.write(ENGINE_REGS["mode"], 0)
    return cycles


def run_layer(pynq: SimPynq, engine: SimIP, dma: SimDma, index: int, slot: LayerSlot,
              x: np.ndarray, poll: bool = False) -> tuple[np.ndarray, int]:
    """One engine run of layer `index` over int8 rows `x`: (outputs, cycles register)."""
    rows = x.shape[0]
    inp = pynq.allocate(shape=(rows, slot.beats * SIMD), dtype=np.int8)
    out = pynq.allocate(shape=(rows, slot.nf * PE), dtype=np.int8)
    inp[:] = pad_input(x, slot, SIMD)
    engine.write(ENGINE_REGS["layer"], index)
    engine.write(ENGINE_REGS["rows"], rows)
    dma.recvchannel.transfer(out)
    dma.sendchannel.transfer(inp)
    engine.write(ENGINE_REGS["ctrl"], AP_START)
    dma.sendchannel.wait()
    if poll:
        for _ in range(10_000):
            if dma.recvchannel.idle:
                break
        # The buffer is cacheable: the DMA wrote memory, the CPU sees it after wait() invalidates.
        assert not np.asarray(out).any()
    dma.recvchannel.wait()
    cycles = wait_done(engine)
    y = unpad_output(np.array(out, dtype=np.int64), slot)
    inp.freebuffer()
    out.freebuffer()
    return y, cycles


def _golden(layer: IntLinear, x: np.ndarray) -> np.ndarray:
    return linear_golden(x, layer).astype(np.int64)


# ---- tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sim", sim_params())
def test_driver_loads_the_ram_and_runs_layers_bit_exact(sim: str, project: Project) -> None:
    plan = project.plan
    assert plan.layers[0].words == plan.rom_depth == ROM_WORDS
    assert plan.ram_depth == plan.layers[1].words + plan.layers[2].words == 5 + 2
    assert plan.layers[2].beats == 2 * plan.layers[2].sf
    words = [int(w, 16) for w in (project.dir / "rtl" / MEM_FILES["weights_ram"]).read_text()
             .split()]
    bytes_per_word = -(-plan.word_bits // (SIMD * 8)) * SIMD  # BPW beats of SIMD bytes
    with SimPynq(project.dir, sim, project.build) as pynq:
        ol = pynq.Overlay("overlay/vitfpga_overlay_test.bit")
        assert ol.bitfile_name == "overlay/vitfpga_overlay_test.bit"
        engine, dma = getattr(ol, ENGINE), getattr(ol, DMA)
        assert engine.read(ENGINE_REGS["ctrl"]) & AP_IDLE
        assert load_weights(pynq, engine, dma, words, bytes_per_word) > 0
        compared = 0
        # Both RAM layers, one of them again, then the ROM layer; one run polls `idle`.
        for n, index in enumerate((1, 2, 1, 0)):
            slot, layer = plan.layers[index], project.layers[index]
            x = random_rows(3 + n, slot.k, seed=7 + n)
            y, cycles = run_layer(pynq, engine, dma, index, slot, x, poll=n == 1)
            expected = _golden(layer, x)
            assert y.shape == expected.shape and np.array_equal(y, expected), (sim, index)
            compared += expected.size
            ideal = slot.ideal_cycles(x.shape[0])
            # the DMA keeps the engine busy: only its pipeline's latency on top (and an N:M
            # run's first R-beat window, as in test_rtl_codecs.py)
            assert ideal <= cycles <= ideal + engine_latency(plan.simd) + slot.beats - slot.sf
        assert compared > 0
        assert pynq.cycles > 0
        assert dma.recvchannel.transferred == 6 * plan.layers[0].nf * PE


@pytest.mark.verilator
def test_driver_is_bit_exact_under_stalls(project: Project) -> None:
    """Random gaps on both DMA streams (a busy memory system): nothing lost or reordered."""
    plan = project.plan
    words = [int(w, 16) for w in (project.dir / "rtl" / MEM_FILES["weights_ram"]).read_text()
             .split()]
    with SimPynq(project.dir, "verilator", project.build, stress=True, seed=5) as pynq:
        ol = pynq.Overlay("design.bit")
        engine, dma = getattr(ol, ENGINE), getattr(ol, DMA)
        load_weights(pynq, engine, dma, words, -(-plan.word_bits // (SIMD * 8)) * SIMD)
        for index in (2, 1):
            slot = plan.layers[index]
            x = random_rows(6, slot.k, seed=30 + index)
            y, cycles = run_layer(pynq, engine, dma, index, slot, x)
            assert np.array_equal(y, _golden(project.layers[index], x))
            assert cycles > slot.ideal_cycles(6)


@pytest.mark.verilator
def test_the_weight_ram_starts_empty(project: Project) -> None:
    """No weight load: layers in the ROM are right, layers in the RAM wrong. Then an output
    buffer a beat too small stops the receive channel with an error, as PG021 does."""
    plan = project.plan
    with SimPynq(project.dir, "verilator", project.build, max_cycles=20_000) as pynq:
        ol = pynq.Overlay("design.bit")
        engine, dma = getattr(ol, ENGINE), getattr(ol, DMA)
        wrong = []
        for index, (slot, layer) in enumerate(zip(plan.layers, project.layers, strict=True)):
            x = random_rows(4, slot.k, seed=20 + index)
            y, _ = run_layer(pynq, engine, dma, index, slot, x)
            wrong.append(not np.array_equal(y, _golden(layer, x)))
        assert wrong == [False, True, True]

        slot = plan.layers[0]
        inp = pynq.allocate(shape=(2, slot.beats * SIMD), dtype=np.int8)
        out = pynq.allocate(shape=(2 * slot.nf * PE - PE,), dtype=np.int8)
        engine.write(ENGINE_REGS["layer"], 0)
        engine.write(ENGINE_REGS["rows"], 2)
        dma.recvchannel.transfer(out)
        dma.sendchannel.transfer(inp)
        engine.write(ENGINE_REGS["ctrl"], AP_START)
        with pytest.raises(DmaError, match="before TLAST"):
            dma.recvchannel.wait()
        assert dma.recvchannel.transferred == out.nbytes


@pytest.mark.verilator
def test_misuse_fails_loudly(project: Project) -> None:
    """Without system.json the default cell names; wrong names, ragged or foreign buffers, a
    busy channel and a receive that never ends are errors that say what is wrong."""
    with SimPynq(project.bare, "verilator", project.build, max_cycles=300) as pynq:
        ol = pynq.Overlay("design.bit")
        with pytest.raises(AttributeError, match=f"{ENGINE}.*{CELL_NAMES['dma']}") as e:
            getattr(ol, ENGINE)
        assert CELL_NAMES["engine"] in str(e.value)
        with pytest.raises(RuntimeError, match="already loaded"):
            pynq.Overlay("other.bit")
        engine, dma = getattr(ol, CELL_NAMES["engine"]), getattr(ol, CELL_NAMES["dma"])
        assert isinstance(dma.sendchannel, DmaChannel)
        with pytest.raises(MemoryError, match="unaligned"):
            engine.read(0x02)
        with pytest.raises(ValueError, match="32-bit"):
            engine.write(ENGINE_REGS["rows"], 2**32)

        buf = pynq.allocate(shape=(4 * SIMD,), dtype=np.uint8)
        out = pynq.allocate(shape=(4 * PE,), dtype=np.uint8)
        assert buf.physical_address != out.physical_address
        assert buf.physical_address % 4096 == 0 and out.physical_address % 4096 == 0
        assert buf[SIMD:].physical_address == buf.physical_address + SIMD
        with pytest.raises(ValueError, match="beat"):
            dma.sendchannel.transfer(buf, nbytes=SIMD + 1)
        with pytest.raises(ValueError, match="outside"):
            dma.sendchannel.transfer(buf, start=SIMD, nbytes=4 * SIMD)
        with pytest.raises(TypeError, match="allocate"):
            dma.sendchannel.transfer(np.zeros(SIMD, dtype=np.uint8))

        # The engine is never started: the receive waits for beats that never come.
        dma.recvchannel.transfer(out)
        before = pynq.cycles  # its wall clock: benchmarks/wall_clock.py
        with pytest.raises(DmaTimeout, match=r"recvchannel.*300 clock cycles.*received 0") as t:
            dma.recvchannel.wait()
        assert isinstance(t.value, TimeoutError) and t.value.moved == 0
        assert 300 <= pynq.cycles - before <= 310
        assert not dma.recvchannel.idle
        with pytest.raises(RuntimeError, match="not idle"):
            dma.recvchannel.transfer(out)
    with pytest.raises(RuntimeError, match="closed"):
        engine.read(0)
