"""`vitfpga check PROJECT`: the static checks of a generated project, before an hour in Vivado.

The project's own records say what it should build: plan.json (the folding), system.json (the
Zynq system around the engine) and the driver's pynq/<design>/hw.json. Its Vivado script (and,
for the engine project, the Vitis HLS script) then runs under `tclsh` with the vendor commands
stubbed (vitfpga.sim.tclcheck), and what it builds is compared with those records. Works for the
engine project (`vitfpga generate`) and the whole-model project (`generate --whole`, which has
whole_model.json and no hls/).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from vitfpga.errors import BadInput
from vitfpga.hls.emit.project import SYSTEM_FILE, WHOLE_FILE
from vitfpga.hls.plan.engine import ModelPlan
from vitfpga.hls.plan.system import ENGINE_TOP, WHOLE_TOP, SystemSpec
from vitfpga.sim import tools

__all__ = ["Check", "ProjectRecords", "check_project", "read_project"]

PLAN_FILE = "plan.json"
_GPIO_KEYS = {"gpio_cell", "gpio_base", "gpio_range", "gpio_bits"}
BUILD_TCL = Path("vivado") / "build.tcl"
HLS_TCL = Path("hls") / "run_hls.tcl"


@dataclass(frozen=True)
class Check:
    """One check of a project: what it looked at, and its problems (none: passed)."""

    name: str
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ProjectRecords:
    """What a project directory says about itself."""

    root: Path
    spec: SystemSpec
    plan: ModelPlan
    whole: dict[str, object] | None  # whole_model.json of a whole-model project


def _find(path: Path) -> Path:
    """The project directory: `path` itself, or the engine project a run directory holds."""
    for candidate in (path, path / "project"):
        if (candidate / SYSTEM_FILE).is_file() and (candidate / PLAN_FILE).is_file():
            return candidate
    raise BadInput(f"{path} is not a vitfpga project (no {SYSTEM_FILE} and {PLAN_FILE}); "
                   f"give the directory `vitfpga generate ... --out DIR` wrote")


def read_project(path: Path) -> ProjectRecords:
    """The project's plan, system and (whole-model projects) whole-model plan; BadInput when
    `path` is not a project or its records do not parse."""
    root = _find(Path(path))
    try:
        data = json.loads((root / SYSTEM_FILE).read_text())
        names = {f.name for f in dataclasses.fields(SystemSpec)}
        if isinstance(data, dict) and set(data) < names and names - set(data) <= _GPIO_KEYS:
            # A project generated before the LED GPIO (issue 21): complete but outdated.
            raise BadInput(f"{root / SYSTEM_FILE}: written by an older vitfpga (no LED GPIO "
                           f"{sorted(names - set(data))}); regenerate the project")
        if not isinstance(data, dict) or set(data) != names:
            raise ValueError(f"keys {sorted(data) if isinstance(data, dict) else data!r}, "
                             f"expected {sorted(names)}")
        spec = SystemSpec(**data)
    except (OSError, ValueError, TypeError) as e:
        raise BadInput(f"{root / SYSTEM_FILE}: corrupt ({e}); regenerate the project") from None
    try:
        plan = ModelPlan.from_json((root / PLAN_FILE).read_text())
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise BadInput(f"{root / PLAN_FILE}: corrupt ({type(e).__name__}: {e}); regenerate the "
                       f"project") from None
    whole = None
    if (root / WHOLE_FILE).is_file():
        try:
            whole = json.loads((root / WHOLE_FILE).read_text())
        except ValueError as e:
            raise BadInput(f"{root / WHOLE_FILE}: corrupt ({e}); regenerate the project") from None
    return ProjectRecords(root, spec, plan, whole)


def _check_records(p: ProjectRecords, hw: dict | None) -> Check:
    """plan.json, system.json and hw.json describe the same design."""
    spec, plan, problems = p.spec, p.plan, []
    for what, got, want in (("board", spec.board, plan.board), ("part", spec.part, plan.part),
                            ("clock_mhz", spec.clock_mhz, plan.clock_mhz),
                            ("in_bits", spec.in_bits, plan.simd * 8),
                            ("out_bits", spec.out_bits, plan.pe * 8),
                            ("top", spec.top, WHOLE_TOP if p.whole is not None else ENGINE_TOP)):
        if got != want:
            problems.append(f"{SYSTEM_FILE} {what} is {got!r}, {PLAN_FILE} (or the project "
                            f"kind) says {want!r}")
    if hw is None:
        problems.append(f"pynq/{spec.design}/hw.json is missing")
    else:
        for key in ("pe", "simd"):
            if hw.get(key) != getattr(plan, key):
                problems.append(f"hw.json {key} is {hw.get(key)!r}, {PLAN_FILE} has "
                                f"{getattr(plan, key)}")
        if [s.get("name") for s in hw.get("layers", [])] != [s.name for s in plan.layers]:
            problems.append(f"hw.json's layers are not {PLAN_FILE}'s, in order")
    if p.whole is not None and not p.whole.get("fits", False):
        problems.append(f"{WHOLE_FILE} says the whole-model design does not fit the board")
    return Check(f"{PLAN_FILE}, {SYSTEM_FILE} and hw.json agree", tuple(problems))


def _read_hw(p: ProjectRecords) -> dict | None:
    path = p.root / "pynq" / p.spec.design / "hw.json"
    if not path.is_file():
        return None
    try:
        hw = json.loads(path.read_text())
    except ValueError as e:
        raise BadInput(f"{path}: corrupt ({e}); regenerate the project") from None
    if not isinstance(hw, dict):
        raise BadInput(f"{path}: not a JSON object; regenerate the project")
    return hw


def check_project(path: Path) -> tuple[ProjectRecords, list[Check]]:
    """Every static check of the project at `path` (or of the engine project in run directory
    `path`). BadInput when it is not a project or tclsh cannot run the TCL checks."""
    from vitfpga.sim.tclcheck import check_hls_script, check_vivado_project

    p = read_project(path)
    if (reason := tools.tclsh_status()) is not None:
        raise BadInput(f"cannot check {p.root}: {reason}")
    hw = _read_hw(p)
    checks = [_check_records(p, hw)]
    tcl = p.root / BUILD_TCL
    if not tcl.is_file():
        checks.append(Check(str(BUILD_TCL), (f"{tcl} is missing",)))
    else:
        what = "the plan, system.json" + (" and hw.json" if hw is not None else "")
        checks.append(Check(f"{BUILD_TCL} under tclsh, against {what}",
                            tuple(check_vivado_project(tcl, p.spec, p.plan, hw))))
    if p.whole is None:  # the whole-model project has no HLS C++ (docs/vit.md)
        hls = p.root / HLS_TCL
        problems = check_hls_script(hls) if hls.is_file() else [f"{hls} is missing"]
        checks.append(Check(f"{HLS_TCL} under tclsh (csim, csynth, cosim, IP export)",
                            tuple(problems)))
    return p, checks
