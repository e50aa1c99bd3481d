"""The hardware steps: plan the engine, emit it, synthesise it, verify every layer on every
simulator, and run the test images with every linear layer on the RTL."""

from __future__ import annotations

import numpy as np
import torch

from vitfpga.config import RunConfig
from vitfpga.errors import BadInput
from vitfpga.hls.emit.project import write_project
from vitfpga.hls.emit.pynq import DriverSource
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import plan_model
from vitfpga.hls.plan.system import ps_family
from vitfpga.quant.golden import linear_int
from vitfpga.quant.model import PRESETS
from vitfpga.quant.structure import layer_rows
from vitfpga.run_state import Run, step
from vitfpga.sim.csim import compiler_status, run_csim
from vitfpga.sim.rtl import RtlSession, run_rtl, simulator_status
from vitfpga.sim.synth import family_for_part, synth_status, synthesize
from vitfpga.sources import TEST_IMAGES

__all__ = ["check_tools", "driver_source", "step_generate", "step_hil", "step_plan", "step_synth",
           "step_verify"]


def step_plan(run: Run) -> None:
    board = get_board(run.cfg.board)
    rows = layer_rows(PRESETS[run.cfg.model], list(run.layers))
    with step(run, "plan", f"fold all {len(run.layers)} linear layers onto one engine for "
                            f"{board.name}"):
        run.plan = p = plan_model(run.layers, rows, board)
        (run.out / "plan.json").write_text(p.to_json())
        run.console.print(f"  PE={p.pe} SIMD={p.simd}, {p.bram36:g} BRAM36 "
                          f"({p.bram_efficiency:.1%} full), {p.uram} URAM, {p.dsp} DSP, "
                          f"~{p.lut} LUT; {p.cycles_per_image} cycles per image, "
                          f"{p.mac_utilisation:.1%} MAC utilisation")


def driver_source(run: Run) -> DriverSource:
    """The trained integer model and test images a generated driver package carries (what
    `vitfpga generate RUN_DIR` reads back from the run directory)."""
    split = run.split
    assert split is not None
    return DriverSource(model=run.cfg.model, cfg=PRESETS[run.cfg.model],
                        model_file=run.out / "int_vit.npz",
                        images=split.x_test[:TEST_IMAGES].numpy(),
                        labels=split.y_test[:TEST_IMAGES].numpy())


def step_generate(run: Run) -> None:
    with step(run, "generate", "HLS C++, Verilog, Vivado/Vitis TCL and the PYNQ driver"):
        files = write_project(run.plan, run.layers, run.out / "project",
                              board=get_board(run.cfg.board), source=driver_source(run))
        run.console.print(f"  {len(files)} files in project/ (hls, rtl, vivado, pynq)")


def step_synth(run: Run) -> None:
    """Yosys synth_xilinx on the emitted Verilog: what the planner estimated, measured."""
    if not run.cfg.synth:
        return
    family = family_for_part(run.plan.part)
    with step(run, "synth", f"Yosys synth_xilinx -family {family} on project/rtl"), \
            run.console.status("  yosys ..."):
        run.synth = y = synthesize(run.out / "project" / "rtl", run.out / "build" / "yosys",
                                   family=family)
    p = run.plan
    run.console.print(f"  Yosys: {y.bram36:g} BRAM36, {y.uram} URAM, {y.dsp} DSP, {y.lut} LUT, "
                      f"{y.ff} FF; planner: {p.bram36:g} BRAM36, {p.uram} URAM, {p.dsp} DSP, "
                      f"~{p.lut} LUT")


def _layer_inputs(run: Run) -> dict[str, np.ndarray]:
    """Real int8 input rows of every layer, from test images through the integer model."""
    record: dict[str, list[np.ndarray]] = {}
    run.ivit.logits(run.split.x_test[:run.cfg.verify_images], record=record)
    return {name: np.concatenate([np.asarray(r) for r in record[name]]) for name in run.layers}


def step_verify(run: Run) -> None:
    sims = run.cfg.simulators
    with step(run, "verify", f"every layer on {', '.join(sims)} against the integer golden"):
        inputs = _layer_inputs(run)
        jobs = [(name, x, linear_int(x, run.layers[name]).numpy()) for name, x in inputs.items()]
        np.savez(run.out / "vectors.npz", **{f"{name}/x": x for name, x, _ in jobs},
                 **{f"{name}/expected": y for name, _, y in jobs})
        project, build = run.out / "project", run.out / "build"
        values = sum(y.size for _, _, y in jobs)
        for sim in sims:
            with run.console.status(f"  {sim}: {len(jobs)} layers, {values} values ..."):
                if sim == "csim":
                    results = run_csim(project / "hls", run.plan, jobs, build / "csim")
                else:
                    results = run_rtl(project / "rtl", run.plan, jobs, sim, build)
            run.verification += results
            compared = sum(r.compared for r in results)
            mismatches = sum(r.mismatches for r in results)
            mark = "[green]✓[/]" if all(r.ok for r in results) else "[red]✗[/]"
            cycles = ""
            if all(r.cycles is not None for r in results):
                measured = sum(r.cycles or 0 for r in results)
                ideal = sum(r.ideal_cycles or 0 for r in results)
                cycles = f", {measured} cycles (ideal {ideal})"
            run.console.print(f"  {mark} {sim}: {len(results)} layers, {compared} values "
                              f"compared, {mismatches} mismatches{cycles}")


def step_hil(run: Run) -> None:
    """Hardware in the loop: every linear layer of the forward pass runs on the RTL simulation,
    the rest on the host from the golden code; logits must equal the golden's exactly."""
    cfg = run.cfg
    n = min(cfg.hil_images, len(run.split.y_test))
    if n == 0:
        return
    sim = cfg.hil_simulator
    with step(run, "hil", f"{n} test images, every linear layer on {sim}"):
        x, y = run.split.x_test[:n], run.split.y_test[:n]
        expected = run.ivit.logits(x)
        with RtlSession(run.out / "project" / "rtl", run.plan, sim, run.out / "build") as rtl, \
                run.console.status(f"  {sim}: {n} images through the engine ..."):
            logits = run.ivit.logits(x, backend=rtl.linear)
        measured = sum(r.cycles for _, r in rtl.runs)
        ideal = sum(r.ideal_cycles for _, r in rtl.runs)
        identical = bool(torch.equal(logits, expected))
        run.accuracy["rtl"] = float((logits.argmax(-1) == y).float().mean())
        run.hil = {"simulator": sim, "images": n, "engine_runs": len(rtl.runs),
                   "logits_identical": identical, "rtl_accuracy": run.accuracy["rtl"],
                   "integer_accuracy": float((expected.argmax(-1) == y).float().mean()),
                   "cycles": measured, "ideal_cycles": ideal,
                   "cycles_per_image": round(measured / n, 1)}
        mark = "[green]✓[/]" if identical else "[red]✗[/]"
        run.console.print(f"  {mark} logits {'identical to' if identical else 'DIFFER from'} "
                          f"the golden; RTL top-1 {run.accuracy['rtl']:.2%} on the first {n} "
                          f"test images (golden {run.hil['integer_accuracy']:.2%}); "
                          f"{measured / n:,.0f} cycles per image (ideal {ideal / n:,.0f})")



def check_tools(cfg: RunConfig) -> None:
    """Fail before training, not after, when a requested simulator is missing or the board
    cannot host the PYNQ system the project is generated for."""
    ps_family(get_board(cfg.board))
    for sim in cfg.simulators:
        reason = compiler_status() if sim == "csim" else simulator_status(sim)
        if reason:
            raise BadInput(f"{sim} is not usable: {reason} (or leave it out of `simulators`)")
    if cfg.synth and (reason := synth_status()):
        raise BadInput(f"Yosys is not usable: {reason} (or set synth = false)")


