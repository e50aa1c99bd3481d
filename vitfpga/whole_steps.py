"""The whole-model step of `vitfpga run`: the entire ViT in generated RTL, images in, logits out
(docs/vit.md), checked against the integer golden and compared with the host-offload design."""

from __future__ import annotations

from typing import Any

from vitfpga.errors import VitfpgaError
from vitfpga.hardware_steps import driver_source
from vitfpga.hls.emit.project import WholeModel, write_project
from vitfpga.hls.emit.vit import VIT_TOP
from vitfpga.hls.plan.whole import offload_ps_pl_bytes, search_whole_model
from vitfpga.report import WHOLE
from vitfpga.run_state import Run, step
from vitfpga.rundir import RunDir
from vitfpga.runtime.forward import logits as golden_logits
from vitfpga.sim.result import SimResult
from vitfpga.sim.synth import synthesize
from vitfpga.sim.vit import run_vit

__all__ = ["IDEAL_NOTE", "step_whole"]

# What report.json's whole_model.ideal_cycles_per_image is (docs/vit.md, Cycles).
IDEAL_NOTE = ("a lower bound: ops run one at a time, each for its slowest unit's throughput "
              "bound (units within an op, such as Q·Kᵀ and its softmax, overlap); "
              "plan.ideal_by_unit splits it by that unit, plan.busy_by_unit is each unit's own "
              "work")


def step_whole(run: Run) -> None:
    cfg = run.cfg
    n = min(cfg.verify.whole_images, len(run.split.y_test))
    if n == 0:
        return
    sim = "verilator"
    model = run.model
    board = run.board
    try:  # the folding `vitfpga plan --whole` picks, every weight in the bitstream ROM
        plan, prog, wplan = search_whole_model(model, model.layers, model.rows(), board,
                                                 rom_only=True)
    except VitfpgaError as e:  # a model this design does not run yet: say so, keep the run
        run.whole = {"skipped": str(e)}
        run.console.print(f"[yellow]whole[/]: skipped: {e}")
        return
    # A project of its own beside project/: what `vitfpga generate RUN --whole` writes.
    project = run.out / RunDir.WHOLE
    with step(run, "whole", f"{n} test images through the whole-model RTL on {sim}"):
        files = write_project(plan, model.layers, project, board=board,
                              source=driver_source(run), whole=WholeModel(prog, wplan))
        run.console.print(f"  PE={plan.pe} SIMD={plan.simd}: {len(files)} files in "
                          f"whole_model/ (rtl, vivado, pynq)")
        x = run.split.x_test[:n].numpy()
        y = run.split.y_test[:n].numpy()
        expected = golden_logits(model, x)
        with run.console.status(f"  {sim}: {n} images, patches in, logits out ..."):
            r = run_vit(project / "rtl", prog, plan, model, x, sim, run.out.build("vit"))
        mismatches = int((r.logits != expected).sum())
        run.verification.append(SimResult(
            target=sim, layer=WHOLE, compared=int(r.logits.size), mismatches=mismatches,
            cycles=r.cycles, ideal_cycles=wplan.ideal_cycles_per_image * n))
        run.accuracy["rtl"] = float((r.logits.argmax(-1) == y).mean())
        yosys: dict[str, Any] | None = None
        if cfg.hardware.synth and cfg.hardware.whole_synth:
            with run.console.status("  Yosys synth_xilinx on the whole design (minutes) ..."):
                s = synthesize(project / "rtl", run.out.build("yosys-vit"), top=VIT_TOP,
                               family=board.synth_family)
            yosys = {"lut": s.lut, "ff": s.ff, "bram36": s.bram36, "uram": s.uram,
                     "dsp": s.dsp, "seconds": s.seconds}
            run.console.print(
                f"  Yosys (whole design): {s.bram36:g} BRAM36, {s.uram} URAM, {s.dsp} DSP, "
                f"{s.lut} LUT, {s.ff} FF; planner: {wplan.bram36:g} BRAM36, {wplan.uram} URAM, "
                f"{wplan.dsp} DSP, ~{wplan.lut} LUT")
        run.whole = _summary(run, wplan.to_json(), r.cycles / n, n, mismatches, yosys)
        mark = "[green]✓[/]" if mismatches == 0 else "[red]✗[/]"
        run.console.print(
            f"  {mark} {r.logits.size} logits, {mismatches} mismatches; RTL top-1 "
            f"{run.accuracy['rtl']:.2%} on {n} test images; {r.cycles / n:,.0f} cycles per "
            f"image (ideal, a lower bound: {wplan.ideal_cycles_per_image:,}, "
            f"{r.cycles / n / wplan.ideal_cycles_per_image:.3f}x); "
            f"{wplan.ps_pl_bytes_per_image} B across PS-PL per image "
            f"(host offload: {run.whole['host_offload']['ps_pl_bytes_per_image']:,} B)")


def _summary(run: Run, wplan: dict[str, Any], cycles: float, n: int, mismatches: int,
             yosys: dict[str, Any] | None) -> dict[str, Any]:
    clock = run.plan.clock_mhz * 1e6
    hil = run.hil or {}
    offload_cycles = hil.get("cycles_per_image", run.plan.cycles_per_image)
    offload_bytes = offload_ps_pl_bytes(run.plan)  # the host-offload design's own engine
    engine_yosys = None if run.synth is None else {
        "lut": run.synth.lut, "ff": run.synth.ff, "bram36": run.synth.bram36,
        "uram": run.synth.uram, "dsp": run.synth.dsp}
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
            "pe": run.plan.pe, "simd": run.plan.simd,
            "engine_cycles_per_image": offload_cycles,
            "engine_images_per_s_bound": round(clock / float(offload_cycles), 1),
            "ps_pl_bytes_per_image": offload_bytes,
            "note": "engine cycles only: the host's LayerNorm, softmax, GELU, attention "
                    "products, adds and the DMA set-up per layer come on top",
            "resources": {"planner": {"bram36": run.plan.bram36, "uram": run.plan.uram,
                                      "dsp": run.plan.dsp, "lut": run.plan.lut},
                          "yosys": engine_yosys}},
        "ps_pl_bytes_per_image": wplan["ps_pl_bytes_per_image"],
        "ps_pl_reduction": round(offload_bytes / wplan["ps_pl_bytes_per_image"], 1),
        "logits_identical": mismatches == 0,
    }
