"""Simulate the emitted Verilog engine with cocotb on Icarus Verilog or Verilator.

A `SimProcess` compiles the design once per build directory (a content hash of the sources
decides when to rebuild), copies the `$readmemh` files next to the simulator, starts the cocotb
testbench `vitfpga.sim.tb.engine_tb` in a background thread and talks to it over a Unix socket.
An `RtlSession` drives it run by run: each `run(layer, rows)` is one `ap_start` of the engine, and
the simulator stays up between runs. (`vitfpga.sim.overlay` drives the same process with single
bus operations instead: a simulated PYNQ board.)
Values and the stream/control protocol are checked here, in one place; a protocol fault raises,
wrong values are counted. `run_rtl` verifies a list of (layer, rows, golden) jobs in one session;
hardware-in-the-loop inference calls `RtlSession.linear` from the golden model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from vitfpga.errors import VerificationFailed
from vitfpga.hls.emit.rtl import CODEBOOK_FILE, MEM_FILES, TOP_FILE
from vitfpga.hls.plan.engine import LayerSlot, ModelPlan
from vitfpga.hls.plan.layout import pad_input, unpad_output
from vitfpga.sim.models import XILINX_PRIMS
from vitfpga.sim.result import SimResult, compare
from vitfpga.sim.tools import SIMULATORS, simulator_status, tool_env

if TYPE_CHECKING:
    from cocotb_tools.runner import Runner

    from vitfpga.ir import IntLinear

__all__ = ["ENGINE", "SIMULATORS", "TB_MODULE", "TOP", "Design", "LayerRun", "RtlSession",
           "SimProcess", "load_ram_weights", "run_rtl"]

TOP = "vitfpga_engine"
TB_MODULE = "vitfpga.sim.tb.engine_tb"
CONFIG_ENV = "VITFPGA_TB_CONFIG"  # read by the testbench
# A directory where builds are shared by content: every simulation of the same sources (the
# test suite's many identical designs, a run and the tests that regenerate its project) reuses
# one build instead of compiling its own into its sim_dir. Unset: each sim_dir builds its own.
CACHE_ENV = "VITFPGA_SIM_CACHE"
TIMESCALE = ("1ns", "1ps")
_LOG_TAIL = 40
START_TIMEOUT_S = 120  # from launching the simulator to the bench's first message
RUN_TIMEOUT_S = 3600  # wall clock for one run; the bench's own cycle limit normally fires first
AP_DONE, AP_IDLE = 0x2, 0x4
# Warnings stay visible in build.log but never stop a build. Most of a Verilator build (20-30 s on
# two cores) is compiling its own runtime, so C++ optimisation flags would not shorten it.
_BUILD_ARGS = {"icarus": [], "verilator": ["-Wno-fatal"]}


def _tail(path: Path, lines: int = _LOG_TAIL) -> str:
    if not path.is_file():
        return f"({path.name} was not written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _reason(log: Path) -> str:
    """The testbench's own account of a failure: its first assertion or error line."""
    if log.is_file():
        for line in log.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith(("AssertionError", "SimTimeoutError", "Exception", "%Error")):
                return line
    return "no assertion found in the log"


@dataclass(frozen=True)
class Design:
    """What a simulation builds: the top module, its file, and the `$readmemh` files it reads
    (`optional_mem`: those only some designs have, copied when present)."""

    top: str
    top_file: str
    mem_files: tuple[str, ...]
    optional_mem: tuple[str, ...] = ()


ENGINE = Design(TOP, TOP_FILE, tuple(MEM_FILES.values()), (CODEBOOK_FILE,))


def _sources(rtl_dir: Path, design: Design = ENGINE) -> list[Path]:
    """The emitted Verilog and the models of the vendor primitives it may instantiate."""
    sources = [*sorted(rtl_dir.glob("*.v")), XILINX_PRIMS]
    missing = [name for name in (design.top_file, *design.mem_files)
               if not (rtl_dir / name).is_file()]
    if missing:
        raise VerificationFailed(f"{rtl_dir} lacks {', '.join(missing)}; run emit_rtl first")
    return sources


def _stamp(sim: str, sources: list[Path]) -> str:
    digest = hashlib.sha256(json.dumps([sim, _BUILD_ARGS[sim]]).encode())
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    return digest.hexdigest()


def _binary(sim: str, sim_dir: Path, top: str) -> Path:
    return sim_dir / ("sim.vvp" if sim == "icarus" else top)


def _runner(sim: str) -> Runner:
    from cocotb_tools.runner import get_runner  # lazily: importing cocotb_tools is slow

    runner = get_runner(sim)
    runner.log.setLevel(logging.WARNING)  # its per-command INFO lines are noise to our callers
    return runner


def _built(sim: str, build_dir: Path, top: str, stamp: str) -> bool:
    stamp_file = build_dir / "build.stamp"
    return _binary(sim, build_dir, top).is_file() and stamp_file.is_file() \
        and stamp_file.read_text() == stamp


def _build(sim: str, sources: list[Path], sim_dir: Path, top: str = TOP) -> Path:
    """Compile unless a build of exactly these sources exists; return the directory holding it:
    `sim_dir`, or with $VITFPGA_SIM_CACHE set, that cache's entry for these sources."""
    stamp = _stamp(sim, sources)
    cache = os.environ.get(CACHE_ENV)
    if not cache:
        _build_in(sim, sources, sim_dir, top, stamp)
        return sim_dir
    entry = Path(cache).resolve() / f"{sim}-{top}-{stamp[:32]}"
    if not _built(sim, entry, top, stamp):
        # Built aside and renamed into place: a half-written entry is never found.
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
        _build_in(sim, sources, tmp, top, stamp)
        try:
            tmp.rename(entry)
        except OSError:  # another process got there first (or a stale entry): keep that
            shutil.rmtree(tmp, ignore_errors=True)
            if not _built(sim, entry, top, stamp):
                raise
    return entry


def _build_in(sim: str, sources: list[Path], sim_dir: Path, top: str, stamp: str) -> None:
    """Compile into `sim_dir` unless it already holds a build of exactly these sources."""
    if _built(sim, sim_dir, top, stamp):
        return
    stamp_file = sim_dir / "build.stamp"
    stamp_file.unlink(missing_ok=True)
    log = sim_dir / "build.log"
    try:
        _runner(sim).build(sources=sources, hdl_toplevel=top, build_dir=sim_dir,
                           build_args=_BUILD_ARGS[sim], timescale=TIMESCALE, always=True,
                           log_file=log)
    except (RuntimeError, SystemExit, ValueError) as e:
        raise VerificationFailed(f"{sim}: building {top} failed ({e}); last lines of {log}:\n"
                                 f"{_tail(log)}") from e
    stamp_file.write_text(stamp)


def _test(sim: str, sim_dir: Path, config: Path, top: str = TOP,
          build_dir: Path | None = None) -> bool:
    """Run the testbench in `sim_dir` on the build in `build_dir` (default: `sim_dir`); True
    when cocotb reports the test passed."""
    from cocotb_tools.check_results import get_results

    results = sim_dir / "results.xml"
    results.unlink(missing_ok=True)
    # A failing simulator raises, and under pytest the runner exits on a failed test: either way
    # the outcome is read back from the results file below.
    with contextlib.suppress(RuntimeError, SystemExit):
        _runner(sim).test(test_module=TB_MODULE, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                          build_dir=build_dir or sim_dir, test_dir=sim_dir,
                          results_xml=str(results),
                          timescale=TIMESCALE, extra_env={CONFIG_ENV: str(config)},
                          log_file=sim_dir / "sim.log")
    try:
        tests, failed = get_results(results)
    except RuntimeError:
        return False
    return tests > 0 and failed == 0


def _lanes(beats: list[int], lanes: int) -> np.ndarray:
    """Output beats -> (beats, lanes) int8 values, lane 0 in the low byte."""
    raw = np.array([[(b >> (8 * i)) & 0xFF for i in range(lanes)] for b in beats],
                   dtype=np.int64).reshape(len(beats), lanes)
    return np.where(raw >= 128, raw - 256, raw)


def _weight_beats(words: list[int], word_bits: int, beat_bits: int) -> list[int]:
    """Weight words -> input beats of a weight load: ceil(word_bits/beat_bits) beats a word,
    low bits first (docs/engine.md, weight load)."""
    per_word = -(-word_bits // beat_bits)
    mask = (1 << beat_bits) - 1
    return [(w >> (j * beat_bits)) & mask for w in words for j in range(per_word)]


def _protocol_faults(rec: dict[str, Any], index: int, rows: int, slot: LayerSlot,
                     y: np.ndarray) -> list[str]:
    """Everything but the values that a correct run must show."""
    faults = []
    if rec["layer_readback"] != index or rec["rows_readback"] != rows:
        faults.append(f"layer/rows read back {rec['layer_readback']}/{rec['rows_readback']}, "
                      f"written {index}/{rows}")
    lasts = rec["lasts"]
    if lasts != [0] * (len(lasts) - 1) + [1]:
        faults.append("TLAST must mark only the final beat")
    if rec["extra_beats"]:
        faults.append(f"{rec['extra_beats']} beats after the final one")
    if not rec["ctrl"] & AP_DONE or not rec["ctrl"] & AP_IDLE:
        faults.append(f"ap_done/ap_idle not read back once done (ctrl={rec['ctrl']:#x})")
    if rec["irq"] != 1 or rec["irq_cleared"] != 0:
        faults.append(f"interrupt {rec['irq']}, after the ISR write {rec['irq_cleared']}")
    if not rec["cycles_ok"] & 1 or abs(rec["cycles"] - rec["bench_cycles"]) > 2:
        faults.append(f"cycles register {rec['cycles']} (valid={rec['cycles_ok'] & 1}), the "
                      f"bench counted {rec['bench_cycles']}")
    if np.any(y[:, slot.n:]):
        faults.append("padded output channels are not zero")
    return faults


@dataclass(frozen=True)
class LayerRun:
    """One engine run: the layer's outputs (padding dropped) and what it cost."""

    y: np.ndarray  # (rows, N) int8 values as int64
    cycles: int  # the engine's `cycles` register: start to done, in clocks
    ideal_cycles: int  # rows * max(NF*SF, beats): LayerSlot.ideal_cycles


class SimProcess:
    """The engine's cocotb bench running in a simulator, serving requests until closed.

    Entering builds the design (unless `sim_dir` already holds a build of the same sources),
    copies the `$readmemh` files next to the simulator, starts the bench in a background thread
    and waits for its hello (`hello`: what it saw right after reset). `request` sends one message
    and returns the bench's answer; the simulator is paused between requests, so simulated time
    passes only while the bench serves one. Leaving stops the bench; a bench that did not end
    cleanly is a VerificationFailed (unless another exception is already on its way). This is the
    one channel both `RtlSession` and the simulated PYNQ board (`vitfpga.sim.overlay`) talk
    through; `config` is passed to the bench as JSON (the socket path is added here).
    """

    def __init__(self, rtl_dir: Path, sim: str, sim_dir: Path, config: dict[str, Any],
                 design: Design = ENGINE) -> None:
        # Absolute: the bench runs in sim_dir and reads its config through a path given here.
        self.rtl_dir, self.sim, self.sim_dir = Path(rtl_dir).resolve(), sim, Path(sim_dir).resolve()
        self.design = design
        self.config = dict(config)
        self.hello: dict[str, Any] = {}
        self._stack = contextlib.ExitStack()
        self._conn: Connection | None = None
        self._thread: threading.Thread | None = None
        self._passed = False
        self._build_dir: Path | None = None  # where _open found or made the build

    def __enter__(self) -> SimProcess:
        try:
            self._open()
        except BaseException:
            # A bench that never connected may still be building or starting: do not wait on it.
            self._close(join=self._conn is not None)
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._close()
        finally:
            self._stack.close()
        if exc is None and not self._passed:
            raise self.failure(f"the testbench did not finish cleanly: "
                               f"{_reason(self.sim_dir / 'sim.log')}")

    def failure(self, what: str) -> VerificationFailed:
        """A failure of the simulation process, with the end of its log."""
        log = self.sim_dir / "sim.log"
        return VerificationFailed(f"{self.sim}: {what}; last lines of {log}:\n{_tail(log)}")

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request to the bench and return its answer."""
        if self._conn is None:
            raise RuntimeError(f"the {self.sim} simulation is not running")
        try:
            self._conn.send(message)
        except OSError as e:
            raise self.failure(f"the simulation stopped listening ({e})") from None
        return self._receive()

    def _open(self) -> None:
        status = simulator_status(self.sim)
        if status is not None:
            raise VerificationFailed(f"{self.sim}: {status}")
        self.sim_dir.mkdir(parents=True, exist_ok=True)
        sources = _sources(self.rtl_dir, self.design)
        # $readmemh resolves the ROM names against the simulator's working directory (sim_dir),
        # so a new set of weights needs no rebuild.
        for name in self.design.mem_files:
            shutil.copyfile(self.rtl_dir / name, self.sim_dir / name)
        for name in self.design.optional_mem:
            if (self.rtl_dir / name).is_file():
                shutil.copyfile(self.rtl_dir / name, self.sim_dir / name)
            else:  # a stale copy from another design must not linger
                (self.sim_dir / name).unlink(missing_ok=True)
        self._stack.enter_context(tool_env(self.sim))
        self._build_dir = _build(self.sim, sources, self.sim_dir, self.design.top)

        # A private directory keeps the socket path short (Unix sockets allow ~100 bytes) and
        # out of other users' reach.
        sock_dir = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="vitfpga-")))
        server = self._stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        server.bind(str(sock_dir / "tb.sock"))
        server.listen(1)
        config = self.sim_dir / "tb_config.json"
        config.write_text(json.dumps({**self.config, "socket": str(sock_dir / "tb.sock")}))
        self._thread = threading.Thread(target=self._simulate, args=(config,), daemon=True)
        self._thread.start()
        server.settimeout(1.0)
        conn: socket.socket | None = None
        for _ in range(START_TIMEOUT_S):
            try:
                conn, _ = server.accept()
                break
            except TimeoutError:
                if not self._thread.is_alive():
                    break
        if conn is None:
            raise self.failure("the testbench never connected")
        conn.setblocking(True)
        self._conn = Connection(conn.detach())
        self.hello = self._receive()

    def _simulate(self, config: Path) -> None:
        self._passed = _test(self.sim, self.sim_dir, config, self.design.top,
                             self._build_dir)

    def _close(self, join: bool = True) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send({"op": "stop"})
            self._conn.close()
            self._conn = None
        if self._thread is not None and join:
            self._thread.join(timeout=START_TIMEOUT_S)

    def _receive(self) -> dict[str, Any]:
        assert self._conn is not None and self._thread is not None
        waited = 0.0
        while not self._conn.poll(1.0):
            waited += 1.0
            if not self._thread.is_alive() or waited > RUN_TIMEOUT_S:
                raise self.failure("the simulation stopped answering")
        try:
            return self._conn.recv()
        except EOFError:
            raise self.failure("the simulation ended mid-run") from None


def _load_words(proc: SimProcess, words: list[int], plan: ModelPlan, sim: str) -> int:
    beats = _weight_beats(words, plan.word_bits, plan.simd * 8)
    rec = proc.request({"op": "load", "words": len(words), "beats": beats,
                        "max_cycles": 10 * len(beats) + 2000})
    if rec["timed_out"] or not rec["ctrl"] & AP_DONE or rec["extra_beats"]:
        raise VerificationFailed(
            f"{sim}: the weight load of {len(words)} words did not complete cleanly "
            f"(timed out={rec['timed_out']}, ctrl={rec['ctrl']:#x}, output beats "
            f"{rec['extra_beats']})")
    return int(rec["cycles"])


def load_ram_weights(proc: SimProcess, rtl_dir: Path, plan: ModelPlan, sim: str) -> int:
    """Stream `rtl_dir/weights_ram.mem` (the weight words after the ROM's) into the design's
    RAM, as a board's driver does once after configuration: the engine and the whole-model top
    load the same way (docs/engine.md, weight load). Returns the load's cycle count."""
    words = (Path(rtl_dir) / MEM_FILES["weights_ram"]).read_text().split()
    if len(words) != plan.ram_depth:
        raise VerificationFailed(f"{MEM_FILES['weights_ram']} holds {len(words)} words, the "
                                 f"plan keeps {plan.ram_depth} in the RAM")
    return _load_words(proc, [int(w, 16) for w in words], plan, sim)


class RtlSession:
    """One simulator process serving engine runs, layer by layer, until closed.

    `stress` drops s_axis TVALID and m_axis TREADY at random (30% of cycles each, from `seed`);
    measured cycles then include those stalls. Weights the plan keeps in the start-up-loaded RAM
    (`weights_ram.mem`) are streamed in before the first run, as a board's driver does; `load`
    False skips that (a test that the RAM is really read).
    """

    def __init__(self, rtl_dir: Path, plan: ModelPlan, sim: str, build_dir: Path, *,
                 stress: bool = False, seed: int = 0, load: bool = True) -> None:
        self.plan, self.sim, self.stress, self.seed, self.load = plan, sim, stress, seed, load
        self.rtl_dir = Path(rtl_dir).resolve()
        self.sim_dir = (Path(build_dir) / sim).resolve()
        self.runs: list[tuple[str, LayerRun]] = []
        self._proc: SimProcess | None = None

    # ---- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> RtlSession:
        proc = SimProcess(self.rtl_dir, self.sim, self.sim_dir,
                          {"pe": self.plan.pe, "simd": self.plan.simd, "stress": self.stress,
                           "seed": self.seed})
        proc.__enter__()
        self._proc = proc
        try:
            hello = proc.hello
            if not hello["ctrl_after_reset"] & AP_IDLE:
                raise VerificationFailed(f"{self.sim}: engine not idle after reset "
                                         f"(ctrl={hello['ctrl_after_reset']:#x})")
            if self.load and self.plan.ram_depth:
                load_ram_weights(proc, self.rtl_dir, self.plan, self.sim)
        except BaseException as e:
            self._proc = None
            proc.__exit__(type(e), e, e.__traceback__)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.__exit__(exc_type, exc, tb)

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        if self._proc is None:
            raise RuntimeError("the RTL session is not open")
        return self._proc.request(message)

    def load_weights(self, words: list[int]) -> int:
        """Stream weight words into the engine's RAM part (docs/engine.md, weight load);
        returns the load's cycle count."""
        if self._proc is None:
            raise RuntimeError("the RTL session is not open")
        return _load_words(self._proc, words, self.plan, self.sim)

    # ---- runs ------------------------------------------------------------------------------------
    def run(self, layer: str, x: np.ndarray) -> LayerRun:
        """One engine run of `layer` over int8 rows `x` (M, K). Raises VerificationFailed on a
        hang or any protocol fault; wrong values are returned for the caller to compare."""
        slot, index = self.plan.slot(layer), self.plan.index(layer)
        x = np.asarray(x, dtype=np.int64)
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != slot.k:
            raise ValueError(f"{slot.ident}: expected input rows of shape (rows>0, {slot.k}), "
                             f"got {x.shape}")
        if x.min() < -128 or x.max() > 127:
            raise ValueError(f"{slot.ident}: input values outside int8")
        rows = int(x.shape[0])
        ideal = slot.ideal_cycles(rows)
        # Generous: stalls in stress mode cost a few times the ideal, a hang costs this much.
        max_cycles = 10 * ideal + 2000
        rec = self._request({"op": "run", "layer": index, "nf": slot.nf,
                             "x": pad_input(x, slot, self.plan.simd).tolist(),
                             "max_cycles": max_cycles})
        if rec["timed_out"] or len(rec["beats"]) != rows * slot.nf:
            raise VerificationFailed(f"{self.sim}: {slot.ident} did not finish {rows} rows in "
                                     f"{max_cycles} cycles (hung)")
        y = _lanes(rec["beats"], self.plan.pe).reshape(rows, slot.nf * self.plan.pe)
        faults = _protocol_faults(rec, index, rows, slot, y)
        if faults:
            raise VerificationFailed(f"{self.sim}: {slot.ident}: {'; '.join(faults)}")
        result = LayerRun(y=unpad_output(y, slot), cycles=int(rec["cycles"]), ideal_cycles=ideal)
        self.runs.append((layer, result))
        return result

    def linear(self, layer: IntLinear, x: np.ndarray) -> np.ndarray:
        """The golden model's backend hook: run `layer` on the engine, return int8 rows."""
        return self.run(layer.name, x).y


def run_rtl(rtl_dir: Path, plan: ModelPlan, jobs: Sequence[tuple[str, np.ndarray, np.ndarray]],
            sim: str, build_dir: Path, *, stress: bool = False, seed: int = 0) -> list[SimResult]:
    """Run every (layer, rows, expected) job in one simulator session, in order, and compare.

    Raises VerificationFailed when the design does not build, the engine hangs, or any run
    breaks the stream or control protocol; wrong values come back as mismatches.
    """
    results = []
    with RtlSession(rtl_dir, plan, sim, build_dir, stress=stress, seed=seed) as session:
        for layer, x, expected in jobs:
            expected = np.asarray(expected, dtype=np.int64)
            run = session.run(layer, x)
            if expected.shape != run.y.shape:
                raise ValueError(f"{plan.slot(layer).ident}: expected golden of shape "
                                 f"{run.y.shape}, got {expected.shape}")
            compared, mismatches = compare(run.y, expected)
            results.append(SimResult(target=sim, layer=layer, compared=compared,
                                     mismatches=mismatches, cycles=run.cycles,
                                     ideal_cycles=run.ideal_cycles))
    return results
