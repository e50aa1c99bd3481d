"""The emitted project directory: everything a user takes to the vendor tools (design.md §7).

`project/plan.json` (the plan it was generated from), `project/hls/` (Vitis HLS C++, csim
testbench, run_hls.tcl) and `project/rtl/` (Verilog and its `$readmemh` ROMs). The same plan and
layers give a byte-identical tree.
"""

from __future__ import annotations

from pathlib import Path

from vitfpga.hls.emit_hls import emit_hls
from vitfpga.hls.emit_rtl import emit_rtl
from vitfpga.hls.plan import ModelPlan, check_model_plan
from vitfpga.ir import IntLinear

__all__ = ["write_project"]


def write_project(plan: ModelPlan, layers: dict[str, IntLinear], out_dir: Path) -> list[Path]:
    """Write the project into `out_dir` (which the caller makes atomic); return its files."""
    check_model_plan(plan, layers)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan_file = out_dir / "plan.json"
    plan_file.write_text(plan.to_json())
    return [plan_file, *emit_hls(plan, layers, out_dir), *emit_rtl(plan, layers, out_dir)]
