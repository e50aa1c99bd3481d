"""`vitfpga run`: the named steps from a dataset to verified hardware, each saving its artifact.

train_float -> qat -> export -> plan -> generate -> verify -> report. Everything is written into a
temporary directory that replaces `--out` only when the run completed.
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
from vitfpga.hls.emit_hls import emit_hls
from vitfpga.hls.emit_rtl import emit_rtl
from vitfpga.hls.plan import EnginePlan, plan_layer
from vitfpga.ir import IntLinear
from vitfpga.outdir import atomic_output_dir, check_output_dir
from vitfpga.quant.codecs import packed_bytes
from vitfpga.quant.data import Split, load_digits_split
from vitfpga.quant.export import export_linears, save_int_model
from vitfpga.quant.golden import GoldenLinear, golden_vit, linear_int
from vitfpga.quant.model import PRESETS, ViT
from vitfpga.quant.qat import quant_vit
from vitfpga.quant.train import accuracy, predict, train
from vitfpga.report import machine_info, write_report
from vitfpga.sim.csim import compiler_status, run_csim
from vitfpga.sim.result import SimResult
from vitfpga.sim.rtl import run_rtl, simulator_status

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
    plan: EnginePlan | None = None
    accuracy: dict[str, float | None] = field(default_factory=dict)
    agreement: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)
    verification: list[SimResult] = field(default_factory=list)
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
    layer = run.layers[run.cfg.verify_layer]  # RunConfig.validate checked the name
    with _step(run, "plan", f"fold {layer.name} ({layer.k}x{layer.n}) onto {board.name}"):
        run.plan = plan_layer(layer, board, rows=PRESETS[run.cfg.model].tokens)
        (run.out / "plan.json").write_text(run.plan.to_json())
        p = run.plan
        run.console.print(f"  PE={p.pe} SIMD={p.simd}, {p.bram36} BRAM36, {p.dsp} DSP, "
                          f"~{p.lut} LUT, {p.ideal_cycles(p.rows)} cycles per image")


def step_generate(run: Run) -> None:
    with _step(run, "generate", "HLS C++ (+ csim testbench, run_hls.tcl) and Verilog"):
        layer = run.layers[run.plan.layer]
        files = emit_hls(run.plan, layer, run.out / "project")
        files += emit_rtl(run.plan, layer, run.out / "project")
        run.console.print(f"  {len(files)} files in project/hls and project/rtl")


def _golden_rows(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Real int8 input rows of the verified layer, from test images through the golden."""
    golden = golden_vit(run.student, run.layers)
    target = golden.get_submodule(run.plan.layer)
    assert isinstance(target, GoldenLinear)
    target.record = True
    predict(golden, run.split.x_test[:run.cfg.verify_images])
    x = torch.cat(target.recorded).numpy()
    return x, linear_int(x, run.layers[run.plan.layer]).numpy()


def step_verify(run: Run) -> None:
    sims = run.cfg.simulators
    with _step(run, "verify", f"{', '.join(sims)} against the integer golden"):
        x, expected = _golden_rows(run)
        np.savez(run.out / "vectors.npz", x=x, expected=expected)
        project, build = run.out / "project", run.out / "build"
        for sim in sims:
            with run.console.status(f"  {sim}: {len(x)} rows x {run.plan.n} outputs ..."):
                if sim == "csim":
                    result = run_csim(project / "hls", run.plan, x, expected, build / "csim")
                else:
                    result = run_rtl(project / "rtl", run.plan, x, expected, sim, build / sim)
            run.verification.append(result)
            cycles = "" if result.cycles is None else \
                f", {result.cycles} cycles (ideal {result.ideal_cycles})"
            mark = "[green]✓[/]" if result.ok else "[red]✗[/]"
            run.console.print(f"  {mark} {sim}: {result.compared} values compared, "
                              f"{result.mismatches} mismatches{cycles}")


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
                     "integer": run.accuracy["integer"], "rtl": None},
        "agreement_qat_integer": run.agreement,
        "size_bytes": {"fp32": fp32, "compressed": compressed},
        "compression_ratio": round(fp32 / compressed, 3),
        "plan": {"board": p.board, "layer": p.layer, "pe": p.pe, "simd": p.simd,
                 "bram36": p.bram36, "uram": p.uram, "dsp": p.dsp, "lut": p.lut,
                 "bram_efficiency": p.bram_efficiency,
                 "cycles_per_image": p.ideal_cycles(p.rows), "clock_mhz": p.clock_mhz},
        "verification": [v.to_json() for v in run.verification],
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(run.cfg).items()},
        "timings_s": run.timings,
        "machine": machine_info(),
    }
    notes = [
        "Linear layers run in exact integer arithmetic; LayerNorm, softmax, GELU and residual "
        "adds run on the host in float between them (integer versions come next).",
        "Accuracy tolerance: QAT (Brevitas fake-quant) and the integer golden are compared by "
        "top-1 agreement, not bit for bit; golden, csim and RTL are compared exactly.",
        f"The hardware engine covers one layer ({p.layer}); cycles_per_image is that layer's.",
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


def run_pipeline(cfg: RunConfig, out: Path, force: bool, console: Console) -> dict[str, Any]:
    check_output_dir(out, force)
    _check_tools(cfg)
    # The tensors are tiny: one thread is 5-8x faster than two that spin against each other
    # (measured on the 2-core CI machine kind while a simulator build shared it).
    torch.set_num_threads(1)
    with atomic_output_dir(out, force) as tmp:
        run = Run(cfg=cfg, out=tmp, console=console)
        for step in (step_train_float, step_qat, step_export, step_plan, step_generate,
                     step_verify):
            step(run)
        report = step_report(run)
    bad = [v for v in run.verification if not v.ok]
    if bad:
        raise VerificationFailed("verification failed: " + "; ".join(
            f"{v.target} {v.layer}: {v.mismatches} of {v.compared} values differ" for v in bad))
    console.print(f"[bold green]done[/]: {out}/report.md, {out}/report.json")
    return report
