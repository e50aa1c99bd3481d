"""`vitfpga run` and `vitfpga compress`: the stages chained, values in and out, each stage's
artifact saved here through `RunDir` as soon as it is made.

run: train_float -> compress -> export -> plan -> generate -> synth -> verify -> hil -> whole ->
report.
compress: train_float -> (search ->) compress -> export -> report. Everything is written into a
temporary directory that replaces `--out` only when the run completed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from vitfpga.config import RunConfig
from vitfpga.errors import BadInput, DoesNotFit, VerificationFailed
from vitfpga.hardware_steps import (
    Hil,
    check_tools,
    step_generate,
    step_hil,
    step_plan,
    step_synth,
    step_verify,
)
from vitfpga.hls.plan.boards import Board, get_board
from vitfpga.hls.plan.engine import ModelPlan, plan_model
from vitfpga.ir import IntModel
from vitfpga.model_steps import (
    Exported,
    Searched,
    Source,
    Student,
    Teacher,
    check_budget,
    resolve_source,
    step_compress,
    step_export,
    step_search,
    step_train_float,
)
from vitfpga.outdir import atomic_output_dir, check_output_dir
from vitfpga.report import machine_info, plan_json, write_report
from vitfpga.rundir import RunDir, config_toml
from vitfpga.sim.result import SimResult
from vitfpga.sim.synth import SynthReport
from vitfpga.sources import driver_source
from vitfpga.ui import Ui
from vitfpga.whole_steps import WholeResult, step_whole

__all__ = ["Hardware", "build_report", "compress_pipeline", "run_pipeline", "write_run_report"]

NOTES = [
    "The integer model is integer-only. In the host-offload design (project/, the hil "
    "row) the linear layers run on the engine and LayerNorm, softmax, GELU, attention "
    "products and residual adds in integers on the host (vitfpga.runtime, numpy only: the "
    "code the board driver runs); in the whole-model design (whole_model/) all of it runs "
    "on chip.",
    "Sizes in real bits: weights under their cheapest exact codec (a shared decoder once), "
    "72 bits of bias and requant tables per output channel, the host's integer parameters. "
    "compression_ratio counts all of it against every fp32 parameter; size.weight_ratio "
    "counts linear weights only, as the compression papers do.",
    "Accuracy tolerance: QAT (Brevitas fake-quant) and the integer golden are compared by "
    "top-1 agreement, not bit for bit; golden, csim and RTL are compared exactly.",
    "One engine runs all linear layers, one layer per start; cycles_per_image is the ideal "
    "(rows x NF x SF summed over layers), the hil row the cycles the RTL measured.",
    "csim cycles are n/a: C simulation is functional, not cycle-accurate.",
    "whole_model: the entire ViT in generated RTL (docs/vit.md): patches in, logits out, "
    "LayerNorm, softmax, GELU, residual adds and Q.K^T / A.V on chip; its verification row "
    "(layer whole-model) compares every logit with the golden, and accuracy.rtl is its top-1. "
    "Its ideal is a lower bound: ops run one at a time, each for its slowest unit's "
    "throughput bound (the units of one op, Q.K^T and its softmax, overlap).",
]


@dataclass(frozen=True)
class Hardware:
    """What the hardware stages of `vitfpga run` returned."""

    plan: ModelPlan
    synth: SynthReport | None
    verification: list[SimResult]  # per layer and simulator, then the whole-model row
    hil: Hil | None
    whole: WholeResult | None

    @property
    def rtl_accuracy(self) -> float | None:
        """The whole model's RTL top-1 when it ran, else the hil run's."""
        if self.whole is not None and self.whole.rtl_accuracy is not None:
            return self.whole.rtl_accuracy
        return None if self.hil is None else self.hil.rtl_accuracy


def build_report(cfg: RunConfig, teacher: Teacher, student: Student, exported: Exported,
                 timings: dict[str, float], search: Searched | None = None,
                 hardware: Hardware | None = None) -> dict[str, Any]:
    """report.json from the stages' values (`cfg`: the resolved configuration)."""
    hw, size = hardware, exported.size
    p = None if hw is None else hw.plan
    synth = None if hw is None else hw.synth
    return {
        "accuracy": {"float": teacher.accuracy, "qat": student.accuracy,
                     "integer": exported.accuracy,
                     "rtl": None if hw is None else hw.rtl_accuracy},
        "agreement_qat_integer": exported.agreement,
        "agreement_qat_float": student.agreement,
        "agreement_with_pytorch": exported.agreement_with_pytorch,
        "import": None if teacher.imported is None else teacher.imported.to_json(),
        "data": {"source": cfg.data.source or "digits (scikit-learn)",
                 "train_images": len(teacher.data.train), "test_images": len(teacher.data.test),
                 "classes": exported.model.spec.num_classes},
        "size_bytes": {"fp32": size.fp32_bits // 8, "compressed": size.compressed_bytes},
        "compression_ratio": round(size.ratio, 3),
        "size": {**size.to_json(), "counted_weight_bits": size.weight_bits,
                 "onchip_weight_bits": None if p is None else p.onchip_weight_bits},
        "structure": {slot: spec.to_dict() for slot, spec in student.structure.items()},
        "search": None if search is None else _search_json(search),
        "plan": None if p is None else plan_json(p),
        "verification": [] if hw is None else [v.to_json() for v in hw.verification],
        "hil": None if hw is None or hw.hil is None else hw.hil.to_json(),
        "whole_model": None if hw is None or hw.whole is None else hw.whole.summary,
        "resources": None if p is None or synth is None else {
            "planner": {"bram36": p.bram36, "uram": p.uram, "dsp": p.dsp, "lut": p.lut},
            "yosys": {"bram36": synth.bram36, "uram": synth.uram, "dsp": synth.dsp,
                      "lut": synth.lut, "ff": synth.ff, "lutram": synth.lutram,
                      "family": synth.family, "seconds": synth.seconds}},
        "config": cfg.to_json(),
        "timings_s": timings,
        "machine": machine_info(),
    }


def _search_json(search: Searched) -> dict[str, Any]:
    return {"chosen": search.chosen, "candidates": [
        {"label": c.label, "family": c.family, "kb": round(c.bits / 8192, 2), "fits": c.fits,
         "why": c.why, "val_accuracy": c.val_accuracy} for c in search.candidates]}


def write_run_report(out: RunDir, cfg: RunConfig, report: dict[str, Any],
                     history: dict[str, list[float]]) -> None:
    """config.toml, report.json, report.md and the plots."""
    # The resolved configuration (a search's choice included) is the run's input record:
    # `plan`, `generate` and `export` read it back, never report.json.
    (out / RunDir.CONFIG).write_text(config_toml(cfg))
    write_report(out, report, history, NOTES)


def _model_stages(cfg: RunConfig, source: Source, out: RunDir, ui: Ui,
                  teacher: Teacher | None = None) -> tuple[Teacher, Student, Exported]:
    """train_float (unless `teacher` is given), compress, export, each saving its artifact."""
    if teacher is None:
        teacher = _save_teacher(out, step_train_float(cfg, source, ui))
    student = step_compress(cfg, teacher, ui)
    torch.save(student.model.state_dict(), out / RunDir.QAT)
    (out / RunDir.STRUCTURE).write_text(json.dumps(
        {slot: spec.to_dict() for slot, spec in student.structure.items()}, indent=2) + "\n")
    exported = step_export(cfg, teacher, student, ui)
    exported.model.save(str(out / RunDir.MODEL))
    return teacher, student, exported


def _save_teacher(out: RunDir, teacher: Teacher) -> Teacher:
    torch.save(teacher.model.state_dict(), out / RunDir.FLOAT)
    return teacher


def _hardware_stages(cfg: RunConfig, teacher: Teacher, exported: Exported, out: RunDir,
                     ui: Ui) -> Hardware:
    """plan, generate, synth, verify, hil, whole, each saving its artifact."""
    board, model, data = get_board(cfg.hardware.board), exported.model, teacher.data
    plan = step_plan(model, board, ui)
    (out / RunDir.PLAN).write_text(plan.to_json())
    source = driver_source(cfg.train.model, model, data, out / RunDir.MODEL)
    step_generate(plan, model, board, source, out, ui)
    synth = step_synth(cfg, board, plan, out, ui)
    verified = step_verify(cfg, model, plan, data, out, ui)
    np.savez(out / RunDir.VECTORS, **verified.vectors)
    hil = step_hil(cfg, model, plan, data, out, ui)
    whole = step_whole(cfg, model, board, plan, hil, synth, data, source, out, ui)
    rows = verified.results + ([] if whole is None or whole.verification is None
                               else [whole.verification])
    return Hardware(plan, synth, rows, hil, whole)


def _history(teacher: Teacher, student: Student, search: Searched | None
             ) -> dict[str, list[float]]:
    """Every training loop's losses, in the order they ran (the report's training plot)."""
    return {"float": teacher.losses, **({} if search is None else search.losses),
            "qat": student.losses}


# Below this many block weights (about a 1 M-parameter ViT) torch's tensors are small enough
# that one thread beats two spinning against each other: 5-8x on the built-in model, 5x on a
# dim-32 torchvision ViT (measured on the 2-core CI machine kind while a simulator shared it).
ONE_THREAD_PARAMS = 1_000_000


def _threads(source: Source) -> None:
    spec = source.frontend.spec
    if spec.depth * (4 * spec.dim**2 + 2 * spec.dim * spec.mlp_hidden) < ONE_THREAD_PARAMS:
        torch.set_num_threads(1)


def run_pipeline(cfg: RunConfig, out: Path, force: bool, console: Console) -> dict[str, Any]:
    check_output_dir(out, force)
    check_tools(cfg)
    cfg, source = resolve_source(cfg)  # every refusal before training
    _threads(source)
    ui = Ui(console)
    with atomic_output_dir(out, force) as tmp:
        run = RunDir(tmp)
        teacher, student, exported = _model_stages(cfg, source, run, ui)
        hw = _hardware_stages(cfg, teacher, exported, run, ui)
        report = build_report(cfg, teacher, student, exported, ui.timings, hardware=hw)
        write_run_report(run, cfg, report, _history(teacher, student, None))
    bad = [f"{v.target} {v.layer}: {v.mismatches} of {v.compared} values differ"
           for v in hw.verification if not v.ok]
    if hw.hil is not None and not hw.hil.logits_identical:
        bad.append(f"hardware in the loop on {hw.hil.simulator}: logits differ from the "
                   f"golden")
    if bad:
        raise VerificationFailed("verification failed: " + "; ".join(bad))
    console.print(f"[bold green]done[/]: {out}/report.md, {out}/report.json")
    return report


def _check_fit(model: IntModel, board: Board) -> None:
    try:
        plan_model(model.layers, model.rows(), board)
    except DoesNotFit as e:
        raise DoesNotFit(f"the trained model does not fit {board.name}, though the search "
                         f"predicted it would: {e}") from None


def compress_pipeline(cfg: RunConfig, out: Path, force: bool, console: Console,
                      budget_kb: float | None = None, board: str | None = None
                      ) -> dict[str, Any]:
    """`vitfpga compress`: teacher, (search,) compressed student, integer model, report; the
    directory is what `vitfpga plan`, `generate` and `export` take as RUN_DIR."""
    check_output_dir(out, force)
    target = None if board is None else get_board(board)
    cfg, source = resolve_source(cfg)
    _threads(source)
    # A budget nothing can meet is refused here, from the shapes, before hours of training.
    search = budget_kb is not None or target is not None
    host = check_budget(cfg, source, budget_kb, target) if search else 0
    ui = Ui(console)
    with atomic_output_dir(out, force) as tmp:
        run = RunDir(tmp)
        teacher = _save_teacher(run, step_train_float(cfg, source, ui))
        searched = None
        if search:
            searched = step_search(cfg, teacher, budget_kb, target, host, ui)
            cfg = dataclasses.replace(cfg, compress=searched.recipe)
        teacher, student, exported = _model_stages(cfg, source, run, ui, teacher=teacher)
        size = exported.size
        if budget_kb is not None and size.compressed_bytes > budget_kb * 1024:
            raise BadInput(f"the trained model takes {size.compressed_bytes / 1024:.1f} KB, "
                           f"over the {budget_kb:g} KB budget the search predicted it would fit")
        if target is not None:  # the trained, encoded model on the board, as `plan` will do
            _check_fit(exported.model, target)
        report = build_report(cfg, teacher, student, exported, ui.timings, search=searched)
        write_run_report(run, cfg, report, _history(teacher, student, searched))
    console.print(f"[bold green]done[/]: {out}/report.md, {out}/report.json")
    return report
