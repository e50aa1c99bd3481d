"""`vitfpga run`: the named steps from a dataset to verified hardware, each saving its artifact.

train_float -> qat -> export -> plan -> generate -> synth -> verify -> hil -> report. Everything
is written into a temporary directory that replaces `--out` only when the run completed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vitfpga.config import RunConfig
from vitfpga.errors import BadInput, VerificationFailed
from vitfpga.hls.boards import get_board
from vitfpga.hls.plan import ModelPlan, plan_model
from vitfpga.hls.project import write_project
from vitfpga.ir import IntLinear
from vitfpga.outdir import atomic_output_dir, check_output_dir
from vitfpga.quant.codecs import packed_bytes
from vitfpga.quant.data import Split, load_digits_split
from vitfpga.quant.export import export_linears, save_int_model
from vitfpga.quant.golden import GoldenLinear, golden_vit, linear_int
from vitfpga.quant.model import PRESETS, ViT, linear_shapes
from vitfpga.quant.qat import quant_vit
from vitfpga.quant.train import accuracy, predict, train
from vitfpga.report import machine_info, write_report
from vitfpga.sim.csim import compiler_status, run_csim
from vitfpga.sim.result import SimResult
from vitfpga.sim.rtl import RtlSession, run_rtl, simulator_status
from vitfpga.sim.synth import SynthReport, family_for_part, synth_status, synthesize

__all__ = ["run_pipeline"]


@dataclass
class Run:
    cfg: RunConfig
    out: Path  # the temporary directory being filled
    console: Console
    split: Split | None = None
    teacher: ViT | None = None
    student: ViT | None = None
    layers: dict[str, IntLinear] = field(default_factory=dict)
    plan: ModelPlan | None = None
    accuracy: dict[str, float | None] = field(default_factory=dict)
    agreement: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)
    verification: list[SimResult] = field(default_factory=list)
    hil: dict[str, Any] = field(default_factory=dict)
    synth: SynthReport | None = None
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def _step(run: Run, name: str, what: str) -> Iterator[None]:
    run.console.print(f"[bold cyan]▶ {name}[/] {what}")
    start = time.perf_counter()
    yield
    run.timings[name] = round(time.perf_counter() - start, 2)
    run.console.print(f"  [green]✓[/] {name} done in {run.timings[name]:.1f} s")


def _train_with_bar(run: Run, label: str, model: torch.nn.Module, epochs: int,
                    **kwargs: Any) -> None:
    losses: list[float] = []
    with Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(),
                  console=run.console, transient=True) as bar:
        task = bar.add_task(label, total=epochs, loss=float("nan"))

        def on_epoch(_: int, loss: float) -> None:
            losses.append(loss)
            bar.update(task, advance=1, loss=loss)

        train(model, run.split, epochs=epochs, on_epoch=on_epoch, **kwargs)
    run.history[label] = losses


def step_train_float(run: Run) -> None:
    cfg, model_cfg = run.cfg, PRESETS[run.cfg.model]
    with _step(run, "train_float", f"{cfg.model}: {model_cfg.describe()}"):
        run.split = load_digits_split(seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        run.teacher = ViT(model_cfg)
        _train_with_bar(run, "float", run.teacher, cfg.float_epochs, lr=cfg.float_lr,
                        seed=cfg.seed)
        run.accuracy["float"] = accuracy(run.teacher, run.split.x_test, run.split.y_test)
        torch.save(run.teacher.state_dict(), run.out / "float.pt")
        run.console.print(f"  float top-1 {run.accuracy['float']:.2%} "
                          f"on {len(run.split.y_test)} test images")


def step_qat(run: Run) -> None:
    cfg = run.cfg
    with _step(run, "qat", f"Brevitas QAT: int{cfg.weight_bits} per-channel weights, int8 "
                           f"activations, distillation weight {cfg.kd_weight}"):
        torch.manual_seed(cfg.seed + 1)
        run.student = quant_vit(PRESETS[cfg.model], run.teacher, cfg.weight_bits)
        _train_with_bar(run, "qat", run.student, cfg.qat_epochs, lr=cfg.qat_lr,
                        seed=cfg.seed + 1, teacher=run.teacher, kd_weight=cfg.kd_weight,
                        temperature=cfg.kd_temperature)
        run.accuracy["qat"] = accuracy(run.student, run.split.x_test, run.split.y_test)
        torch.save(run.student.state_dict(), run.out / "qat.pt")
        run.console.print(f"  QAT top-1 {run.accuracy['qat']:.2%}")


def step_export(run: Run) -> None:
    with _step(run, "export", "integer model: intB weights, int32 bias, (M, S) requant"):
        run.layers = export_linears(run.student)
        save_int_model(run.layers, str(run.out / "int_model.npz"))
        golden = golden_vit(run.student, run.layers)
        x, y = run.split.x_test, run.split.y_test
        int_pred = predict(golden, x).argmax(-1)
        run.accuracy["integer"] = float((int_pred == y).float().mean())
        run.agreement = float((int_pred == predict(run.student, x).argmax(-1)).float().mean())
        run.console.print(f"  {len(run.layers)} linear layers; integer golden top-1 "
                          f"{run.accuracy['integer']:.2%}, agrees with QAT on "
                          f"{run.agreement:.2%} of test images")


def step_plan(run: Run) -> None:
    board = get_board(run.cfg.board)
    rows = {name: r for name, _, _, r in linear_shapes(PRESETS[run.cfg.model])}
    with _step(run, "plan", f"fold all {len(run.layers)} linear layers onto one engine for "
                            f"{board.name}"):
        run.plan = p = plan_model(run.layers, rows, board)
        (run.out / "plan.json").write_text(p.to_json())
        run.console.print(f"  PE={p.pe} SIMD={p.simd}, {p.bram36:g} BRAM36 "
                          f"({p.bram_efficiency:.1%} full), {p.uram} URAM, {p.dsp} DSP, "
                          f"~{p.lut} LUT; {p.cycles_per_image} cycles per image, "
                          f"{p.mac_utilisation:.1%} MAC utilisation")


def step_generate(run: Run) -> None:
    with _step(run, "generate", "HLS C++ (+ csim testbench, run_hls.tcl) and Verilog"):
        files = write_project(run.plan, run.layers, run.out / "project")
        run.console.print(f"  {len(files)} files in project/hls and project/rtl")


def step_synth(run: Run) -> None:
    """Yosys synth_xilinx on the emitted Verilog: what the planner estimated, measured."""
    if not run.cfg.synth:
        return
    family = family_for_part(run.plan.part)
    with _step(run, "synth", f"Yosys synth_xilinx -family {family} on project/rtl"), \
            run.console.status("  yosys ..."):
        run.synth = y = synthesize(run.out / "project" / "rtl", run.out / "build" / "yosys",
                                   family=family)
    p = run.plan
    run.console.print(f"  Yosys: {y.bram36:g} BRAM36, {y.uram} URAM, {y.dsp} DSP, {y.lut} LUT, "
                      f"{y.ff} FF; planner: {p.bram36:g} BRAM36, {p.uram} URAM, {p.dsp} DSP, "
                      f"~{p.lut} LUT")


def _layer_inputs(run: Run) -> dict[str, np.ndarray]:
    """Real int8 input rows of every layer, from test images through the golden."""
    golden = golden_vit(run.student, run.layers)
    taps = {name: golden.get_submodule(name) for name in run.layers}
    for tap in taps.values():
        assert isinstance(tap, GoldenLinear)
        tap.record = True
    predict(golden, run.split.x_test[:run.cfg.verify_images])
    return {name: torch.cat(tap.recorded).numpy() for name, tap in taps.items()}


def step_verify(run: Run) -> None:
    sims = run.cfg.simulators
    with _step(run, "verify", f"every layer on {', '.join(sims)} against the integer golden"):
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
    with _step(run, "hil", f"{n} test images, every linear layer on {sim}"):
        x, y = run.split.x_test[:n], run.split.y_test[:n]
        # Recomputed rather than taken from export: the host ops run in float, and only the
        # same batches as the RTL pass below make "identical logits" a fair demand.
        expected = predict(golden_vit(run.student, run.layers), x)
        with RtlSession(run.out / "project" / "rtl", run.plan, sim, run.out / "build") as rtl, \
                run.console.status(f"  {sim}: {n} images through the engine ..."):
            logits = predict(golden_vit(run.student, run.layers, backend=rtl.linear), x)
        measured = sum(r.cycles for _, r in rtl.runs)
        ideal = sum(r.ideal_cycles for _, r in rtl.runs)
        identical = bool(torch.equal(logits, expected))
        run.accuracy["rtl"] = float((logits.argmax(-1) == y).float().mean())
        run.hil = {"simulator": sim, "images": n, "engine_runs": len(rtl.runs),
                   "logits_identical": identical,
                   "integer_accuracy": float((expected.argmax(-1) == y).float().mean()),
                   "cycles": measured, "ideal_cycles": ideal,
                   "cycles_per_image": round(measured / n, 1)}
        mark = "[green]✓[/]" if identical else "[red]✗[/]"
        run.console.print(f"  {mark} logits {'identical to' if identical else 'DIFFER from'} "
                          f"the golden; RTL top-1 {run.accuracy['rtl']:.2%} on the first {n} "
                          f"test images (golden {run.hil['integer_accuracy']:.2%}); "
                          f"{measured / n:,.0f} cycles per image (ideal {ideal / n:,.0f})")


def _sizes(run: Run) -> tuple[int, int]:
    """fp32 bytes of every parameter vs what the compressed model stores: packed intB weights,
    int32 biases, 5 bytes of requant (M, S) per channel, and the float parameters the host ops
    still use (LayerNorm, cls token, position embedding) at fp32."""
    fp32 = sum(p.numel() for p in run.teacher.parameters()) * 4
    linear_params = sum(lay.weight.size + lay.n for lay in run.layers.values())
    host_params = sum(p.numel() for p in run.teacher.parameters()) - linear_params
    compressed = sum(packed_bytes(lay.weight, lay.weight_bits) + lay.n * (4 + 5)
                     for lay in run.layers.values()) + host_params * 4
    return fp32, compressed


def step_report(run: Run) -> dict[str, Any]:
    fp32, compressed = _sizes(run)
    p = run.plan
    report = {
        "accuracy": {"float": run.accuracy["float"], "qat": run.accuracy["qat"],
                     "integer": run.accuracy["integer"], "rtl": run.accuracy.get("rtl")},
        "agreement_qat_integer": run.agreement,
        "size_bytes": {"fp32": fp32, "compressed": compressed},
        "compression_ratio": round(fp32 / compressed, 3),
        "plan": {"board": p.board, "pe": p.pe, "simd": p.simd, "weight_bits": p.weight_bits,
                 "layers": len(p.layers), "bram36": p.bram36, "uram": p.uram, "dsp": p.dsp,
                 "lut": p.lut, "bram_efficiency": p.bram_efficiency,
                 "cycles_per_image": p.cycles_per_image, "clock_mhz": p.clock_mhz,
                 "mac_utilisation": round(p.mac_utilisation, 4),
                 "images_per_s": round(p.clock_mhz * 1e6 / p.cycles_per_image, 1)},
        "verification": [v.to_json() for v in run.verification],
        "hil": run.hil or None,
        "resources": None if run.synth is None else {
            "planner": {"bram36": p.bram36, "uram": p.uram, "dsp": p.dsp, "lut": p.lut},
            "yosys": {"bram36": run.synth.bram36, "uram": run.synth.uram, "dsp": run.synth.dsp,
                      "lut": run.synth.lut, "ff": run.synth.ff, "lutram": run.synth.lutram,
                      "family": run.synth.family, "seconds": run.synth.seconds}},
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(run.cfg).items()},
        "timings_s": run.timings,
        "machine": machine_info(),
    }
    notes = [
        "Linear layers run in exact integer arithmetic; LayerNorm, softmax, GELU and residual "
        "adds run on the host in float between them (integer versions come next).",
        "Accuracy tolerance: QAT (Brevitas fake-quant) and the integer golden are compared by "
        "top-1 agreement, not bit for bit; golden, csim and RTL are compared exactly.",
        "One engine runs all linear layers, one layer per start; cycles_per_image is the ideal "
        "(rows x NF x SF summed over layers), the hil row the cycles the RTL measured.",
        "csim cycles are n/a: C simulation is functional, not cycle-accurate.",
    ]
    write_report(run.out, report, run.history, notes)
    return report


def _check_tools(cfg: RunConfig) -> None:
    """Fail before training, not after, when a requested simulator is missing."""
    for sim in cfg.simulators:
        reason = compiler_status() if sim == "csim" else simulator_status(sim)
        if reason:
            raise BadInput(f"{sim} is not usable: {reason} (or leave it out of `simulators`)")
    if cfg.synth and (reason := synth_status()):
        raise BadInput(f"Yosys is not usable: {reason} (or set synth = false)")


def run_pipeline(cfg: RunConfig, out: Path, force: bool, console: Console) -> dict[str, Any]:
    check_output_dir(out, force)
    _check_tools(cfg)
    # The tensors are tiny: one thread is 5-8x faster than two that spin against each other
    # (measured on the 2-core CI machine kind while a simulator build shared it).
    torch.set_num_threads(1)
    with atomic_output_dir(out, force) as tmp:
        run = Run(cfg=cfg, out=tmp, console=console)
        for step in (step_train_float, step_qat, step_export, step_plan, step_generate,
                     step_synth, step_verify, step_hil):
            step(run)
        report = step_report(run)
    bad = [f"{v.target} {v.layer}: {v.mismatches} of {v.compared} values differ"
           for v in run.verification if not v.ok]
    if run.hil and not run.hil["logits_identical"]:
        bad.append(f"hardware in the loop on {run.hil['simulator']}: logits differ from the "
                   f"golden")
    if bad:
        raise VerificationFailed("verification failed: " + "; ".join(bad))
    console.print(f"[bold green]done[/]: {out}/report.md, {out}/report.json")
    return report
