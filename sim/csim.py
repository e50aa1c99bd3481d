"""C simulation of the emitted HLS engine with plain g++ against the hls4ml copy of ap_types.

This checks the C++ arithmetic and stream protocol bit for bit against the golden; it is not
cycle-accurate, so its SimResult carries no measured cycles (Vitis cosim or the RTL sims do).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np

from vitfpga.errors import VerificationFailed
from vitfpga.hls.emit_hls import read_matrix, write_matrix
from vitfpga.hls.plan import EnginePlan
from vitfpga.sim.result import SimResult, compare

__all__ = ["ap_types_dir", "compiler_status", "run_csim"]

CXX = "g++"
COMPILE_TIMEOUT_S = 600
RUN_TIMEOUT_S = 600
_ERROR_LINES = 12
_SUMMARY = re.compile(
    r"^COMPARED (\d+) MISMATCHES (\d+) PROTOCOL_ERRORS (\d+) ITERATIONS (\d+)$", re.MULTILINE)
_SOURCES = ("vitfpga_engine.cpp", "tb_vitfpga_engine.cpp")


def ap_types_dir() -> Path:
    """Xilinx's ap_int.h / hls_stream.h as shipped inside the hls4ml wheel."""
    # find_spec locates the package without importing it (importing hls4ml is slow).
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("hls4ml is not installed; it provides the ap_types headers")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "templates" / "vivado" / "ap_types"
        if (candidate / "ap_int.h").is_file() and (candidate / "hls_stream.h").is_file():
            return candidate
    raise FileNotFoundError("hls4ml is installed but ships no ap_types/ap_int.h")


@cache
def compiler_status() -> str | None:
    """None when C simulation can run here, else the reason it cannot."""
    if shutil.which(CXX) is None:
        return f"{CXX} not found on PATH"
    try:
        ap_types_dir()
    except FileNotFoundError as e:
        return str(e)
    try:
        subprocess.run([CXX, "--version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"{CXX} does not run: {e}"
    return None


def _first_errors(text: str) -> str:
    lines = [ln for ln in text.splitlines() if "error" in ln.lower()] or text.splitlines()
    return "\n".join(lines[:_ERROR_LINES])


def _compile(hls_dir: Path, build_dir: Path) -> Path:
    """Compile top and testbench in parallel (ap_int makes each unit slow), then link."""
    flags = ["-O2", "-std=c++17", "-Wno-unknown-pragmas",
             # -isystem silences the vendor headers' own warnings but keeps their search order.
             "-isystem", str(ap_types_dir()), "-I", str(hls_dir), "-I", str(hls_dir / "include")]
    objects = [build_dir / (Path(src).stem + ".o") for src in _SOURCES]

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise VerificationFailed(f"csim: {CXX} timed out after {e.timeout}s") from e

    commands = [[CXX, *flags, "-c", str(hls_dir / src), "-o", str(obj)]
                for src, obj in zip(_SOURCES, objects, strict=True)]
    exe = build_dir / "csim"
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        results = list(pool.map(run, commands))
    if all(r.returncode == 0 for r in results):
        results.append(run([CXX, *map(str, objects), "-o", str(exe)]))
    for r in results:
        if r.returncode != 0:
            raise VerificationFailed(f"csim: {CXX} failed on {hls_dir}:\n{_first_errors(r.stderr)}")
    return exe


def _check_shapes(plan: EnginePlan, x: np.ndarray, expected: np.ndarray) -> None:
    if x.ndim != 2 or x.shape[1] != plan.k:
        raise ValueError(f"{plan.ident}: input must be (rows, {plan.k}), got {x.shape}")
    if expected.shape != (x.shape[0], plan.n):
        raise ValueError(f"{plan.ident}: expected must be ({x.shape[0]}, {plan.n}), "
                         f"got {expected.shape}")
    for name, values in (("input", x), ("expected", expected)):
        if values.size and (values.min() < -128 or values.max() > 127):
            raise ValueError(f"{plan.ident}: {name} values outside int8")


def run_csim(hls_dir: Path, plan: EnginePlan, x: np.ndarray, expected: np.ndarray,
             build_dir: Path) -> SimResult:
    """Compile `hls_dir` (from emit_hls) with g++, stream `x` through it, compare to `expected`.

    Returns a SimResult whose counts come from comparing the outputs read back in Python (the
    testbench's own counts must agree). Raises VerificationFailed when the C++ does not compile
    or run, or the stream protocol is wrong (missing/extra beats, TLAST, iteration count).
    """
    if (reason := compiler_status()) is not None:
        raise VerificationFailed(f"csim cannot run: {reason}")
    hls_dir, build_dir = Path(hls_dir).resolve(), Path(build_dir).resolve()
    x = np.asarray(x, dtype=np.int64)
    expected = np.asarray(expected, dtype=np.int64)
    _check_shapes(plan, x, expected)

    build_dir.mkdir(parents=True, exist_ok=True)
    paths = [build_dir / name for name in ("input.txt", "expected.txt", "output.txt")]
    write_matrix(paths[0], x)
    write_matrix(paths[1], expected)
    paths[2].unlink(missing_ok=True)  # a stale output must never pass for a fresh one
    exe = _compile(hls_dir, build_dir)

    try:
        proc = subprocess.run([str(exe), *map(str, paths)], capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, cwd=build_dir)
    except subprocess.TimeoutExpired as e:
        raise VerificationFailed(f"csim of {plan.ident} timed out after {e.timeout}s") from e
    summary = _SUMMARY.search(proc.stdout)
    if summary is None or proc.returncode not in (0, 1):
        raise VerificationFailed(
            f"csim of {plan.ident} failed (exit {proc.returncode}):\n"
            f"{_first_errors(proc.stderr + proc.stdout)}")
    tb_compared, tb_mismatches = int(summary.group(1)), int(summary.group(2))

    compared, mismatches = compare(read_matrix(paths[2]), expected)
    if (compared, mismatches) != (tb_compared, tb_mismatches):
        raise VerificationFailed(
            f"csim of {plan.ident}: testbench counted {tb_mismatches}/{tb_compared} mismatches, "
            f"its output file gives {mismatches}/{compared}")
    return SimResult(target="csim", layer=plan.layer, compared=compared, mismatches=mismatches,
                     cycles=None, ideal_cycles=plan.ideal_cycles(int(x.shape[0])))
