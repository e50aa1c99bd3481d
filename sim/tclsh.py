"""Running a generated Vivado or Vitis HLS TCL script under a stubbed `tclsh`.

The script runs under a real `tclsh` (Debian package `tcl`), so TCL syntax is parsed by TCL
itself, inside a stub environment (`vitfpga/sim/tcl/stubs.tcl`): every Vivado (or Vitis HLS)
command of an allow-list is a procedure that records its name and arguments and returns a
plausible value (an object name, an IP version, a finished run's status). Commands that are
neither stubbed nor safe TCL built-ins fail with their name (`exec`, `open`, `source`, `glob` are
hidden too: a generated script has no business running programs or reading files), `exit`
returns instead of ending the script, and file writes (`file copy/delete/mkdir`, `cd`) are
recorded, not done. `run_tcl` returns the recorded calls; `vitfpga.sim.tclcheck` checks them.

The stub environment is a static TCL file; what it needs from here (the allow-lists, the options
that take a value, the PS slave segments, the answers the stubs give) reaches it as `argv`
elements, each a TCL list of plain words.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from vitfpga.sim.tools import tclsh_status

__all__ = ["IP_VERSIONS", "NEWEST_IP_VERSION", "PS_SLAVE_SEGMENTS", "RUN_TIMEOUT_S",
           "TCL_BUILTINS", "VALUE_OPTIONS", "VITIS_COMMANDS", "VIVADO_COMMANDS", "Call",
           "TclScriptError", "Tool", "run_tcl"]

Tool = Literal["vivado", "vitis_hls"]
RUN_TIMEOUT_S = 60

# The Vivado commands a generated build script may use (project, block design, runs).
VIVADO_COMMANDS = frozenset({
    "create_project", "open_project", "close_project", "current_project", "set_property",
    "get_property", "reset_property", "report_property", "list_property", "current_fileset",
    "get_filesets", "add_files", "remove_files", "get_files", "import_files",
    "update_compile_order", "update_ip_catalog", "get_board_parts", "get_parts", "get_ipdefs",
    "get_ips", "create_bd_design", "current_bd_design", "open_bd_design", "close_bd_design",
    "current_bd_instance", "create_bd_cell", "get_bd_cells", "get_bd_pins", "get_bd_intf_pins",
    "get_bd_nets", "get_bd_intf_nets", "get_bd_ports", "get_bd_intf_ports", "connect_bd_net",
    "connect_bd_intf_net", "disconnect_bd_net", "create_bd_port", "create_bd_intf_port",
    "make_bd_pins_external", "make_bd_intf_pins_external", "apply_bd_automation",
    "get_bd_addr_spaces", "get_bd_addr_segs", "assign_bd_address", "exclude_bd_addr_seg",
    "include_bd_addr_seg", "validate_bd_design", "save_bd_design", "regenerate_bd_layout",
    "generate_target", "make_wrapper", "launch_runs", "wait_on_run", "reset_run", "get_runs",
    "open_run", "write_bitstream", "write_hw_platform", "report_utilization",
    "report_timing_summary", "get_param", "set_param", "version", "startgroup", "endgroup",
    "get_board_part_interfaces", "apply_board_connection",
})
# The Vitis HLS commands run_hls.tcl may use.
VITIS_COMMANDS = frozenset({
    "open_project", "close_project", "set_top", "add_files", "open_solution", "close_solution",
    "set_part", "create_clock", "set_clock_uncertainty", "config_compile", "config_export",
    "config_interface", "config_rtl", "config_schedule", "config_dataflow",
    "set_directive_pipeline", "set_directive_unroll", "set_directive_interface",
    "set_directive_array_partition", "set_directive_bind_storage", "set_directive_inline",
    "set_directive_dataflow",
    "csim_design", "csynth_design", "cosim_design", "export_design",
})
# TCL built-ins a generated script may use: computation, control flow and `puts`. `file`, `cd`,
# `puts` and `exit` are wrapped (recorded; writes and exits not performed).
TCL_BUILTINS = frozenset({
    "append", "array", "break", "catch", "concat", "continue", "dict", "error", "expr", "for",
    "foreach", "format", "global", "if", "incr", "info", "join", "lappend", "lassign", "lindex",
    "linsert", "list", "llength", "lrange", "lrepeat", "lreplace", "lreverse", "lsearch", "lset",
    "lsort", "namespace", "proc", "puts", "regexp", "regsub", "return", "scan", "set", "split",
    "string", "subst", "switch", "unset", "upvar", "uplevel", "variable", "while", "file", "cd",
    "pwd", "exit",
})
# Options that take a value, so the stubs can tell values from positional arguments.
VALUE_OPTIONS = (
    "-of_objects", "-of", "-filter", "-type", "-vlnv", "-reference", "-part", "-rule", "-config",
    "-offset", "-range", "-target_address_space", "-fileset", "-files", "-jobs", "-to_step",
    "-dict", "-name", "-net", "-intf_net", "-dir", "-from", "-to", "-format", "-vendor",
    "-library", "-version", "-ipname", "-flow_target", "-cflags", "-csimflags", "-argv",
    "-period", "-description", "-display_name", "-output", "-flow", "-rtl", "-trace_level",
    "-board_interface", "-ip_intf", "-diagram", "-file",
)
# The versions the stubbed `get_ipdefs` finds for a VLNV glob, in that (catalogue) order, and
# the newest of them, the one a script must pick.
IP_VERSIONS = ("9.1", "10.0", "2.1")
NEWEST_IP_VERSION = "10.0"
# Address segments behind the PS slave ports, named as Vivado names them (the zynqmp HP0 port's
# segments hang under SAXIGP2): what `get_bd_addr_segs -of_objects` of those pins returns.
PS_SLAVE_SEGMENTS = {
    "S_AXI_HP0": ("S_AXI_HP0", ("HP0_DDR_LOWOCM", "HP0_HIGH_OCM")),
    "S_AXI_HP0_FPD": ("SAXIGP2", ("HP0_DDR_LOW", "HP0_DDR_HIGH", "HP0_LPS_OCM", "HP0_QSPI",
                                  "HP0_PCIE_LOW")),
}


@dataclass(frozen=True)
class Call:
    """One recorded command: its name, its arguments as TCL passed them, and each argument split
    as a TCL list by TCL itself (None where the argument is not a well-formed list)."""

    name: str
    args: tuple[str, ...]
    items: tuple[tuple[str, ...] | None, ...] = ()

    def option(self, flag: str) -> str | None:
        """The value after `flag`, or None."""
        for i, a in enumerate(self.args[:-1]):
            if a == flag:
                return self.args[i + 1]
        return None

    def has(self, flag: str) -> bool:
        return flag in self.args

    def positional_indices(self) -> list[int]:
        """Indices of the arguments that are neither options nor option values."""
        out, skip = [], False
        for i, a in enumerate(self.args):
            if skip:
                skip = False
            elif a.startswith("-") and not _is_number(a):
                skip = a in VALUE_OPTIONS
            else:
                out.append(i)
        return out

    def positional(self) -> list[str]:
        return [self.args[i] for i in self.positional_indices()]

    def words(self, index: int) -> tuple[str, ...]:
        """Argument `index` as a TCL list (one element when TCL could not split it)."""
        if index < len(self.items) and self.items[index] is not None:
            return self.items[index]  # type: ignore[return-value]
        return (self.args[index],)


class TclScriptError(Exception):
    """The script failed under the stubs: a TCL error (syntax included), an unknown command, or
    an `error` the script raised itself. `calls` holds what ran before."""

    def __init__(self, message: str, calls: list[Call]):
        super().__init__(message)
        self.message = message
        self.calls = calls


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _tcl_list(words: Iterable[str]) -> str:
    # Only plain names reach here (command, option, port and segment names).
    words = list(words)
    if any(not re.fullmatch(r"[-A-Za-z0-9_]+", w) for w in words):
        raise ValueError(f"not plain TCL words: {words}")
    return " ".join(words)


def _names(names: Iterable[str]) -> str:
    # Board parts and versions: plain words with `.` and `:` too.
    names = list(names)
    if any(not re.fullmatch(r"[-A-Za-z0-9_.:]+", n) for n in names):
        raise ValueError(f"not board part names or versions: {names}")
    return " ".join(names)


def _argv(tool: Tool) -> list[str]:
    """The stub environment's data, as stubs.tcl reads it from argv[6:10] (see its header)."""
    stubs = sorted(VIVADO_COMMANDS if tool == "vivado" else VITIS_COMMANDS)
    segments = [w for port, (map_, names) in sorted(PS_SLAVE_SEGMENTS.items())
                for name in names for w in (port, map_, name)]
    # The stubs stay visible to the script; so do the allowed built-ins and `unknown`.
    keep = sorted({*stubs, *TCL_BUILTINS, "unknown"})
    return [_tcl_list(VALUE_OPTIONS), _tcl_list(segments), _tcl_list(stubs), _tcl_list(keep)]


def run_tcl(script: Path, tool: Tool, *, board_files: bool = True, files_exist: bool = True,
            runs_complete: bool = True, pinned_ips: bool = True, pin_segments: bool = True,
            board_parts: Iterable[str] = ()) -> list[Call]:
    """Run `script` under tclsh with `tool`'s commands stubbed; return the recorded calls.

    `board_files`: whether `get_board_parts` finds the board (an exact name, or a glob among
    the installed `board_parts`) and its interfaces; `files_exist`: what `file exists`
    answers; `runs_complete`: whether Vivado runs report a written bitstream; `pinned_ips`:
    whether `get_ipdefs` finds an exact VLNV (a glob always finds versions 9.1, 10.0 and 2.1,
    in that order); `pin_segments`: whether `get_bd_addr_segs -of_objects` finds a pin's
    segments (False: only an explicit segment path does, as in some Vivado releases). Raises
    TclScriptError when the script fails (or ever reached an unknown command, even inside a
    `catch`), RuntimeError when tclsh is unusable.
    """
    if tool not in ("vivado", "vitis_hls"):
        raise ValueError(f"tool must be 'vivado' or 'vitis_hls', not {tool!r}")
    reason = tclsh_status()
    if reason is not None:
        raise RuntimeError(reason)
    script = Path(script).resolve()
    label = "Vivado" if tool == "vivado" else "Vitis HLS"
    with tempfile.TemporaryDirectory(prefix="vitfpga-tclcheck-") as tmp:
        log = Path(tmp) / "calls.jsonl"
        with resources.as_file(resources.files("vitfpga.sim.tcl") / "stubs.tcl") as stubs:
            try:
                proc = subprocess.run(
                    [shutil.which("tclsh") or "tclsh", str(stubs), str(log), str(script),
                     str(int(board_files)), str(int(files_exist)), str(int(runs_complete)),
                     label, *_argv(tool), str(int(pinned_ips)), str(int(pin_segments)),
                     _names(board_parts), _names(IP_VERSIONS)],
                    capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=tmp)
            except subprocess.TimeoutExpired:
                raise TclScriptError(f"{script.name} did not finish within {RUN_TIMEOUT_S} s "
                                     f"under the stubs (an endless loop?)", []) from None
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    calls, unknown, result = [], [], None
    for line in lines:
        rec = json.loads(line)
        call = Call(rec["cmd"], tuple(rec["args"]),
                    tuple(None if i is None else tuple(i) for i in rec["items"]))
        if call.name == "__unknown__":
            unknown.append(call.args[0])
        elif call.name == "__result__":
            result = call
        else:
            calls.append(call)
    if result is None:
        raise TclScriptError(f"tclsh could not run {script.name}: "
                             f"{(proc.stderr or proc.stdout).strip()[-500:]}", calls)
    if unknown:
        names = ", ".join(sorted(set(unknown)))
        raise TclScriptError(f"command {names} is not a known {label} command (nor a TCL "
                             f"built-in a generated script may use)", calls)
    if result.args[0] != "0":
        raise TclScriptError(result.args[1], calls)
    return calls
