"""The whole-model stage of `vitfpga run`: the entire ViT in generated RTL, images in, logits
out (docs/vit.md), checked against the integer golden and compared with the host-offload
design. `whole_design` is also what `vitfpga plan --whole` and `generate --whole` call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vitfpga.config import RunConfig
from vitfpga.errors import VitfpgaError
from vitfpga.hardware_steps import Hil, generate
from vitfpga.hls.emit.project import WholeModel
from vitfpga.hls.emit.pynq import DriverSource
from vitfpga.hls.emit.vit import VIT_TOP
from vitfpga.hls.plan.boards import Board
from vitfpga.hls.plan.engine import LUT_BUDGET, ModelPlan, folding_label
from vitfpga.hls.plan.program import VitProgram
from vitfpga.hls.plan.whole import (
    WHOLE_MAX_LANES,
    WholeModelPlan,
    offload_ps_pl_bytes,
    search_whole_model,
)
from vitfpga.ir import IntLinear, IntModel
from vitfpga.report import WHOLE
from vitfpga.rundir import RunDir
from vitfpga.runtime.forward import logits as golden_logits
from vitfpga.sim.result import SimResult
from vitfpga.sim.synth import SynthReport, synthesize
from vitfpga.sim.vit import run_vit
from vitfpga.ui import Ui

if TYPE_CHECKING:
    from vitfpga.quant.data import Split

__all__ = ["IDEAL_NOTE", "WholeResult", "step_whole", "whole_design"]

# What report.json's whole_model.ideal_cycles_per_image is (docs/vit.md, Cycles).
IDEAL_NOTE = ("a lower bound: ops run one at a time, each for its slowest unit's throughput "
              "bound (units within an op, such as Q·Kᵀ and its softmax, overlap); "
              "plan.ideal_by_unit splits it by that unit, plan.busy_by_unit is each unit's own "
              "work")


@dataclass(frozen=True)
class WholeResult:
    summary: dict[str, Any]  # report.json's whole_model ({"skipped": why} when not run)
    verification: SimResult | None  # the whole-model row beside the per-layer rows
    rtl_accuracy: float | None  # top-1 of the whole-model RTL on its images


def whole_design(model: IntModel, layers: dict[str, IntLinear], rows: dict[str, int],
                 board: Board, max_lanes: int = WHOLE_MAX_LANES,
                 lut_budget: float = LUT_BUDGET
                 ) -> tuple[ModelPlan, VitProgram, WholeModelPlan]:
    """(engine plan, op program, whole-model plan): the fastest whole design that fits within
    `lut_budget` of the board's LUTs."""
    return search_whole_model(model, layers, rows, board, max_lanes, lut_budget)


def step_whole(cfg: RunConfig, model: IntModel, board: Board, engine: ModelPlan,
               hil: Hil | None, synth: SynthReport | None, data: Split, source: DriverSource,
               out: RunDir, ui: Ui) -> WholeResult | None:
    n = min(cfg.verify.whole_images, len(data.test))
    if n == 0:
        return None
    sim = "verilator"
    try:  # the folding `vitfpga plan --whole` picks
        plan, prog, wplan = whole_design(model, model.layers, model.rows(), board,
                                         cfg.hardware.whole_max_lanes)
    except VitfpgaError as e:  # a model this design does not run yet: say so, keep the run
        ui.print(f"[yellow]whole[/]: skipped: {e}")
        return WholeResult({"skipped": str(e)}, None, None)
    # A project of its own beside project/: what `vitfpga generate RUN --whole` writes.
    project = out / RunDir.WHOLE
    with ui.step("whole", f"{n} test images through the whole-model RTL on {sim}"):
        files = generate(plan, model.layers, project, board, source,
                         whole=WholeModel(prog, wplan))
        ui.print(f"  {folding_label(plan.pe, plan.simd, plan.groups)}, LayerNorm "
                 f"{prog.ln_lanes} lanes, softmax "
                 f"{prog.sm_lanes}: "
                 f"{len(files)} files in whole_model/ (rtl, vivado, pynq)")
        x, y = (t.numpy() for t in data.test.take(n))
        expected = golden_logits(model, x)
        with ui.status(f"  {sim}: {n} images, patches in, logits out ..."):
            r = run_vit(project / "rtl", prog, plan, model, x, sim, out.build("vit"))
        mismatches = int((r.logits != expected).sum())
        row = SimResult(target=sim, layer=WHOLE, compared=int(r.logits.size),
                        mismatches=mismatches, cycles=r.cycles,
                        ideal_cycles=wplan.ideal_cycles_per_image * n)
        rtl_accuracy = float((r.logits.argmax(-1) == y).mean())
        yosys = _whole_synth(cfg, board, wplan, out, ui)
        summary = _summary(engine, hil, synth, wplan.to_json(), r.cycles / n, n, mismatches,
                           yosys)
        mark = "[green]✓[/]" if mismatches == 0 else "[red]✗[/]"
        ui.print(
            f"  {mark} {r.logits.size} logits, {mismatches} mismatches; RTL top-1 "
            f"{rtl_accuracy:.2%} on {n} test images; {r.cycles / n:,.0f} cycles per "
            f"image (ideal, a lower bound: {wplan.ideal_cycles_per_image:,}, "
            f"{r.cycles / n / wplan.ideal_cycles_per_image:.3f}x); "
            f"{wplan.ps_pl_bytes_per_image} B across PS-PL per image "
            f"(host offload: {summary['host_offload']['ps_pl_bytes_per_image']:,} B)")
    return WholeResult(summary, row, rtl_accuracy)


def _whole_synth(cfg: RunConfig, board: Board, wplan: WholeModelPlan, out: RunDir, ui: Ui
                 ) -> dict[str, Any] | None:
    """Yosys on the whole design, when the config asks for it (minutes)."""
    if not (cfg.hardware.synth and cfg.hardware.whole_synth):
        return None
    with ui.status("  Yosys synth_xilinx on the whole design (minutes) ..."):
        s = synthesize(out / RunDir.WHOLE / "rtl", out.build("yosys-vit"), top=VIT_TOP,
                       family=board.synth_family)
    ui.print(f"  Yosys (whole design): {s.bram36:g} BRAM36, {s.uram} URAM, {s.dsp} DSP, "
             f"{s.lut} LUT, {s.ff} FF; planner: {wplan.bram36:g} BRAM36, {wplan.uram} URAM, "
             f"{wplan.dsp} DSP, ~{wplan.lut} LUT")
    return {"lut": s.lut, "ff": s.ff, "bram36": s.bram36, "uram": s.uram, "dsp": s.dsp,
            "seconds": s.seconds}


def _summary(engine: ModelPlan, hil: Hil | None, synth: SynthReport | None,
             wplan: dict[str, Any], cycles: float, n: int, mismatches: int,
             yosys: dict[str, Any] | None) -> dict[str, Any]:
    clock = engine.clock_mhz * 1e6
    offload_cycles = engine.cycles_per_image if hil is None else hil.cycles_per_image
    offload_bytes = offload_ps_pl_bytes(engine)  # the host-offload design's own engine
    engine_yosys = None if synth is None else {
        "lut": synth.lut, "ff": synth.ff, "bram36": synth.bram36,
        "uram": synth.uram, "dsp": synth.dsp}
    return {
        "images": n, "simulator": "verilator", "mismatches": mismatches,
        "cycles_per_image": round(cycles, 1),
        "ideal_cycles_per_image": wplan["ideal_cycles_per_image"],
        "ideal_note": IDEAL_NOTE,
        "cycles_vs_ideal": round(cycles / wplan["ideal_cycles_per_image"], 4),
        "images_per_s": round(clock / cycles, 1),
        "plan": wplan,
        "resources": {"planner": {k: wplan[k] for k in ("bram36", "uram", "dsp", "lut")},
                      "yosys": yosys},
        "host_offload": {
            "pe": engine.pe, "simd": engine.simd,
            "engine_cycles_per_image": offload_cycles,
            "engine_images_per_s_bound": round(clock / float(offload_cycles), 1),
            "ps_pl_bytes_per_image": offload_bytes,
            "note": "engine cycles only: the host's LayerNorm, softmax, GELU, attention "
                    "products, adds and the DMA set-up per layer come on top",
            "resources": {"planner": {"bram36": engine.bram36, "uram": engine.uram,
                                      "dsp": engine.dsp, "lut": engine.lut},
                          "yosys": engine_yosys}},
        "ps_pl_bytes_per_image": wplan["ps_pl_bytes_per_image"],
        "ps_pl_reduction": round(offload_bytes / wplan["ps_pl_bytes_per_image"], 1),
        "logits_identical": mismatches == 0,
    }
