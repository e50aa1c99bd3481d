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
from vitfpga.run_state import Run, step
from vitfpga.rundir import RunDir
from vitfpga.runtime import linear_golden
from vitfpga.runtime import logits as int_logits
from vitfpga.sim import tools
from vitfpga.sim.csim import run_csim
from vitfpga.sim.rtl import RtlSession, run_rtl
from vitfpga.sim.synth import synthesize
from vitfpga.sources import TEST_IMAGES

__all__ = ["check_tools", "driver_source", "needed_tools", "step_generate", "step_hil",
           "step_plan", "step_synth", "step_verify"]


def step_plan(run: Run) -> None:
    board = run.board
    layers = run.model.layers
    with step(run, "plan", f"fold all {len(layers)} linear layers onto one engine for "
                            f"{board.name}"):
        run.plan = p = plan_model(layers, run.model.rows(), board)
        (run.out / RunDir.PLAN).write_text(p.to_json())
        run.console.print(f"  PE={p.pe} SIMD={p.simd}, {p.bram36:g} BRAM36 "
                          f"({p.bram_efficiency:.1%} full), {p.uram} URAM, {p.dsp} DSP, "
                          f"~{p.lut} LUT; {p.cycles_per_image} cycles per image, "
                          f"{p.mac_utilisation:.1%} MAC utilisation")


def driver_source(run: Run) -> DriverSource:
    """The trained integer model and test images a generated driver package carries (what
    `vitfpga generate RUN_DIR` reads back from the run directory)."""
    split = run.split
    assert split is not None
    return DriverSource(model=run.cfg.train.model, spec=run.model.spec,
                        model_file=run.out / RunDir.MODEL,
                        images=split.x_test[:TEST_IMAGES].numpy(),
                        labels=split.y_test[:TEST_IMAGES].numpy())


def step_generate(run: Run) -> None:
    with step(run, "generate", "HLS C++, Verilog, Vivado/Vitis TCL and the PYNQ driver"):
        files = write_project(run.plan, run.model.layers, run.out / RunDir.PROJECT,
                              board=run.board, source=driver_source(run))
        run.console.print(f"  {len(files)} files in project/ (hls, rtl, vivado, pynq)")


def step_synth(run: Run) -> None:
    """Yosys synth_xilinx on the emitted Verilog: what the planner estimated, measured."""
    if not run.cfg.hardware.synth:
        return
    family = run.board.synth_family
    with step(run, "synth", f"Yosys synth_xilinx -family {family} on project/rtl"), \
            run.console.status("  yosys ..."):
        run.synth = y = synthesize(run.out / RunDir.PROJECT / "rtl", run.out.build("yosys"),
                                   family=family)
    p = run.plan
    run.console.print(f"  Yosys: {y.bram36:g} BRAM36, {y.uram} URAM, {y.dsp} DSP, {y.lut} LUT, "
                      f"{y.ff} FF; planner: {p.bram36:g} BRAM36, {p.uram} URAM, {p.dsp} DSP, "
                      f"~{p.lut} LUT")


def _layer_inputs(run: Run) -> dict[str, np.ndarray]:
    """Real int8 input rows of every layer, from test images through the integer model."""
    record: dict[str, list[np.ndarray]] = {}
    images = run.split.x_test[:run.cfg.verify.verify_images].numpy()
    int_logits(run.model, images, record=record)
    return {name: np.concatenate(record[name]) for name in run.model.layers}


def step_verify(run: Run) -> None:
    sims = run.cfg.verify.simulators
    with step(run, "verify", f"every layer on {', '.join(sims)} against the integer golden"):
        inputs = _layer_inputs(run)
        # int8, as the golden's expected rows have always been stored in vectors.npz
        jobs = [(name, x, linear_golden(x, run.model.layers[name]).astype(np.int8))
                for name, x in inputs.items()]
        np.savez(run.out / RunDir.VECTORS, **{f"{name}/x": x for name, x, _ in jobs},
                 **{f"{name}/expected": y for name, _, y in jobs})
        project, build = run.out / RunDir.PROJECT, run.out / RunDir.BUILD
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
    n = min(cfg.verify.hil_images, len(run.split.y_test))
    if n == 0:
        return
    sim = cfg.verify.hil_simulator
    with step(run, "hil", f"{n} test images, every linear layer on {sim}"):
        x, y = run.split.x_test[:n], run.split.y_test[:n]
        model = run.model
        expected = torch.from_numpy(int_logits(model, x.numpy()))
        rtl_dir, build = run.out / RunDir.PROJECT / "rtl", run.out / RunDir.BUILD
        with RtlSession(rtl_dir, run.plan, sim, build) as rtl, \
                run.console.status(f"  {sim}: {n} images through the engine ..."):
            logits = torch.from_numpy(int_logits(model, x.numpy(), linear=lambda name, rows: (
                rtl.linear(model.layers[name], rows.astype(np.int8)))))
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



def needed_tools(cfg: RunConfig) -> list[tuple[str, str, str]]:
    """(tool, what needs it, the config change that skips it) for every external tool a run
    of `cfg` will start, in the order the steps start them."""
    hw, v = cfg.hardware, cfg.verify
    need = [(sim, "layer verification", f"leave {sim} out of [verify] simulators")
            for sim in v.simulators]
    if hw.synth:
        # The whole-model synthesis runs only with synth on, so one entry covers both.
        whole = v.whole_images > 0 and hw.whole_synth
        need.append(("yosys", "the resource check" + (" and the whole-model synthesis"
                                                      if whole else ""),
                     "set [hardware] synth = false"))
    if v.hil_images > 0:
        need.append((v.hil_simulator, "hardware in the loop",
                     "set [verify] hil_images = 0 or another hil_simulator"))
    if v.whole_images > 0:
        # step_whole always simulates the whole model on Verilator (sim/vit.py).
        need.append(("verilator", "the whole-model run", "set [verify] whole_images = 0"))
    return need


def check_tools(cfg: RunConfig) -> None:
    """Fail before training, not after, when a tool the run needs is missing or the board
    cannot host the PYNQ system the project is generated for."""
    ps_family(get_board(cfg.hardware.board))  # preflight: no Run (and no resolved board) yet
    for tool, why, skip in needed_tools(cfg):
        reason = tools.yosys_status() if tool == "yosys" else tools.simulator_status(tool)
        if reason:
            name = "Yosys" if tool == "yosys" else tool
            raise BadInput(f"{name} is not usable ({why} needs it): {reason} (or {skip})")


