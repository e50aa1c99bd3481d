"""The hardware stages: plan the engine, emit it, synthesise it, verify every layer on every
simulator, and run the test images with every linear layer on the RTL. Each takes values and
returns one; `plan` and `generate` are what `vitfpga plan` and `generate RUN_DIR` call too."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitfpga.config import RunConfig
from vitfpga.errors import BadInput
from vitfpga.hls.emit.project import WholeModel, write_project
from vitfpga.hls.emit.pynq import DriverSource
from vitfpga.hls.plan.boards import Board, get_board
from vitfpga.hls.plan.engine import MAX_LANES, ModelPlan, plan_model
from vitfpga.hls.plan.system import ps_family
from vitfpga.ir import IntLinear, IntModel
from vitfpga.rundir import RunDir
from vitfpga.runtime import linear_golden
from vitfpga.runtime import logits as int_logits
from vitfpga.sim import tools
from vitfpga.sim.csim import run_csim
from vitfpga.sim.result import SimResult
from vitfpga.sim.rtl import RtlSession, run_rtl
from vitfpga.sim.synth import SynthReport, synthesize
from vitfpga.ui import Ui

if TYPE_CHECKING:  # torch comes with it: `vitfpga plan` and `generate` load without it
    from vitfpga.quant.data import Split

__all__ = ["Hil", "Verified", "check_tools", "generate", "needed_tools", "plan", "step_generate",
           "step_hil", "step_plan", "step_synth", "step_verify"]


@dataclass(frozen=True)
class Verified:
    vectors: dict[str, np.ndarray]  # every layer's int8 inputs and golden outputs (vectors.npz)
    results: list[SimResult]  # one row per layer and simulator


@dataclass(frozen=True)
class Hil:
    """Hardware in the loop; its fields, in order, are report.json's `hil`."""

    simulator: str
    images: int
    engine_runs: int
    logits_identical: bool
    rtl_accuracy: float
    integer_accuracy: float
    cycles: int
    ideal_cycles: int
    cycles_per_image: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def plan(layers: dict[str, IntLinear], rows: dict[str, int], board: Board,
         max_lanes: int = MAX_LANES) -> ModelPlan:
    """The engine plan: every linear layer folded onto one engine for `board`."""
    return plan_model(layers, rows, board, max_lanes=max_lanes)


def generate(engine: ModelPlan, layers: dict[str, IntLinear], project: Path, board: Board,
             source: DriverSource, from_hls: bool = False, whole: WholeModel | None = None
             ) -> list[Path]:
    """The bitstream project for `engine` (with `whole`, the whole-model design) in `project`."""
    return write_project(engine, layers, project, board=board, source=source, from_hls=from_hls,
                         whole=whole)


def step_plan(model: IntModel, board: Board, ui: Ui) -> ModelPlan:
    layers = model.layers
    with ui.step("plan", f"fold all {len(layers)} linear layers onto one engine for "
                         f"{board.name}"):
        p = plan(layers, model.rows(), board)
        ui.print(f"  PE={p.pe} SIMD={p.simd}, {p.bram36:g} BRAM36 "
                 f"({p.bram_efficiency:.1%} full), {p.uram} URAM, {p.dsp} DSP, "
                 f"~{p.lut} LUT; {p.cycles_per_image} cycles per image, "
                 f"{p.mac_utilisation:.1%} MAC utilisation")
    return p


def step_generate(engine: ModelPlan, model: IntModel, board: Board, source: DriverSource,
                  out: RunDir, ui: Ui) -> list[Path]:
    with ui.step("generate", "HLS C++, Verilog, Vivado/Vitis TCL and the PYNQ driver"):
        files = generate(engine, model.layers, out / RunDir.PROJECT, board, source)
        ui.print(f"  {len(files)} files in project/ (hls, rtl, vivado, pynq)")
    return files


def step_synth(cfg: RunConfig, board: Board, engine: ModelPlan, out: RunDir, ui: Ui
               ) -> SynthReport | None:
    """Yosys synth_xilinx on the emitted Verilog: what the planner estimated, measured."""
    if not cfg.hardware.synth:
        return None
    family = board.synth_family
    with ui.step("synth", f"Yosys synth_xilinx -family {family} on project/rtl"), \
            ui.status("  yosys ..."):
        y = synthesize(out / RunDir.PROJECT / "rtl", out.build("yosys"), family=family)
    p = engine
    ui.print(f"  Yosys: {y.bram36:g} BRAM36, {y.uram} URAM, {y.dsp} DSP, {y.lut} LUT, "
             f"{y.ff} FF; planner: {p.bram36:g} BRAM36, {p.uram} URAM, {p.dsp} DSP, "
             f"~{p.lut} LUT")
    return y


def _layer_inputs(model: IntModel, data: Split, n: int) -> dict[str, np.ndarray]:
    """Real int8 input rows of every layer, from test images through the integer model."""
    record: dict[str, list[np.ndarray]] = {}
    int_logits(model, data.test.take(n)[0].numpy(), record=record)
    return {name: np.concatenate(record[name]) for name in model.layers}


def step_verify(cfg: RunConfig, model: IntModel, engine: ModelPlan, data: Split, out: RunDir,
                ui: Ui) -> Verified:
    sims = cfg.verify.simulators
    verified: list[SimResult] = []
    with ui.step("verify", f"every layer on {', '.join(sims)} against the integer golden"):
        inputs = _layer_inputs(model, data, cfg.verify.verify_images)
        # int8, as the golden's expected rows have always been stored in vectors.npz
        jobs = [(name, x, linear_golden(x, model.layers[name]).astype(np.int8))
                for name, x in inputs.items()]
        project, build = out / RunDir.PROJECT, out / RunDir.BUILD
        values = sum(y.size for _, _, y in jobs)
        for sim in sims:
            with ui.status(f"  {sim}: {len(jobs)} layers, {values} values ..."):
                if sim == "csim":
                    results = run_csim(project / "hls", engine, jobs, build / "csim")
                else:
                    results = run_rtl(project / "rtl", engine, jobs, sim, build)
            verified += results
            compared = sum(r.compared for r in results)
            mismatches = sum(r.mismatches for r in results)
            mark = "[green]✓[/]" if all(r.ok for r in results) else "[red]✗[/]"
            cycles = ""
            if all(r.cycles is not None for r in results):
                measured = sum(r.cycles or 0 for r in results)
                ideal = sum(r.ideal_cycles or 0 for r in results)
                cycles = f", {measured} cycles (ideal {ideal})"
            ui.print(f"  {mark} {sim}: {len(results)} layers, {compared} values "
                     f"compared, {mismatches} mismatches{cycles}")
    vectors = {**{f"{name}/x": x for name, x, _ in jobs},
               **{f"{name}/expected": y for name, _, y in jobs}}
    return Verified(vectors, verified)


def step_hil(cfg: RunConfig, model: IntModel, engine: ModelPlan, data: Split, out: RunDir,
             ui: Ui) -> Hil | None:
    """Hardware in the loop: every linear layer of the forward pass runs on the RTL simulation,
    the rest on the host from the golden code; logits must equal the golden's exactly."""
    import torch

    n = min(cfg.verify.hil_images, len(data.test))
    if n == 0:
        return None
    sim = cfg.verify.hil_simulator
    with ui.step("hil", f"{n} test images, every linear layer on {sim}"):
        x, y = data.test.take(n)
        expected = torch.from_numpy(int_logits(model, x.numpy()))
        rtl_dir, build = out / RunDir.PROJECT / "rtl", out / RunDir.BUILD
        with RtlSession(rtl_dir, engine, sim, build) as rtl, \
                ui.status(f"  {sim}: {n} images through the engine ..."):
            logits = torch.from_numpy(int_logits(model, x.numpy(), linear=lambda name, rows: (
                rtl.linear(model.layers[name], rows.astype(np.int8)))))
        measured = sum(r.cycles for _, r in rtl.runs)
        ideal = sum(r.ideal_cycles for _, r in rtl.runs)
        identical = bool(torch.equal(logits, expected))
        hil = Hil(simulator=sim, images=n, engine_runs=len(rtl.runs), logits_identical=identical,
                  rtl_accuracy=float((logits.argmax(-1) == y).float().mean()),
                  integer_accuracy=float((expected.argmax(-1) == y).float().mean()),
                  cycles=measured, ideal_cycles=ideal, cycles_per_image=round(measured / n, 1))
        mark = "[green]✓[/]" if identical else "[red]✗[/]"
        ui.print(f"  {mark} logits {'identical to' if identical else 'DIFFER from'} "
                 f"the golden; RTL top-1 {hil.rtl_accuracy:.2%} on the first {n} "
                 f"test images (golden {hil.integer_accuracy:.2%}); "
                 f"{measured / n:,.0f} cycles per image (ideal {ideal / n:,.0f})")
    return hil


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
    ps_family(get_board(cfg.hardware.board))  # preflight, before the run resolves its board
    for tool, why, skip in needed_tools(cfg):
        reason = tools.yosys_status() if tool == "yosys" else tools.simulator_status(tool)
        if reason:
            name = "Yosys" if tool == "yosys" else tool
            raise BadInput(f"{name} is not usable ({why} needs it): {reason} (or {skip})")


