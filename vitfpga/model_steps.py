"""The model stages: float teacher, (budget search,) compressed student, integer-only model.
Each takes values and returns one; the pipeline saves its artifact."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from vitfpga.config import RunConfig, TrainConfig
from vitfpga.hls.plan.boards import Board
from vitfpga.ir import IntModel
from vitfpga.quant.compress import (
    Compressed,
    calibration_images,
    compress,
    export_compressed,
    structure_for,
    teacher_calibration,
)
from vitfpga.quant.data import Split, holdout, load_digits_split
from vitfpga.quant.frontend import frontend_for
from vitfpga.quant.intvit import calibrate_int_vit, host_param_bits
from vitfpga.quant.model import ViT
from vitfpga.quant.recipe import CompressionRecipe
from vitfpga.quant.size import SizeReport, model_size
from vitfpga.quant.structure import Structure
from vitfpga.quant.train import accuracy, predict, train
from vitfpga.runtime import logits as int_logits
from vitfpga.search import Candidate, candidates, choose, price, refuse_early
from vitfpga.ui import Ui

__all__ = ["Exported", "Searched", "Student", "Teacher", "check_budget", "shape_host_bits",
           "step_compress", "step_export", "step_search", "step_train_float"]


@dataclass(frozen=True)
class Teacher:
    model: ViT
    data: Split  # the digits split every later stage tests on
    accuracy: float
    losses: list[float]


@dataclass(frozen=True)
class Student:
    model: ViT
    structure: Structure
    accuracy: float
    losses: list[float]


@dataclass(frozen=True)
class Exported:
    model: IntModel
    accuracy: float
    agreement: float  # top-1 agreement with the QAT student
    size: SizeReport


@dataclass(frozen=True)
class Searched:
    recipe: CompressionRecipe  # the winner, to be trained for the run's full epochs
    chosen: str  # why it won, for the report
    candidates: list[Candidate]
    losses: dict[str, list[float]]  # each trial's training losses, by label


def step_train_float(cfg: TrainConfig, ui: Ui) -> Teacher:
    frontend = frontend_for(cfg.model)
    with ui.step("train_float", f"{cfg.model}: {frontend.config.describe()}"):
        split = load_digits_split(seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        teacher = frontend.float_model()
        losses: list[float] = []
        with ui.progress("float", cfg.float_epochs, losses) as on_loss:
            train(teacher, split, epochs=cfg.float_epochs, lr=cfg.float_lr,
                  seed=cfg.seed, on_epoch=lambda _, loss: on_loss(loss))
        acc = accuracy(teacher, split.x_test, split.y_test)
        ui.print(f"  float top-1 {acc:.2%} on {len(split.y_test)} test images")
    return Teacher(teacher, split, acc, losses)


def step_compress(cfg: RunConfig, teacher: Teacher, ui: Ui) -> Student:
    recipe, split = cfg.compress, teacher.data
    with ui.step("compress", f"Brevitas QAT with distillation (weight {recipe.kd_weight}): "
                             f"{recipe.describe()}"):
        result, losses = _train_compressed(cfg.train, recipe, teacher.model, split, "qat", ui)
        acc = accuracy(result.student, split.x_test, split.y_test)
        ui.print(f"  QAT top-1 {acc:.2%}")
    return Student(result.student, result.structure, acc, losses)


def _train_compressed(cfg: TrainConfig, recipe: CompressionRecipe, teacher: ViT, split: Split,
                      label: str, ui: Ui) -> tuple[Compressed, list[float]]:
    losses: list[float] = []
    with ui.progress(label, max(recipe.qat_epochs, 1), losses) as on_loss:
        result = compress(recipe, frontend_for(cfg.model).config, teacher, split,
                          lambda _, loss: on_loss(loss), seed=cfg.seed)
    return result, losses


def _target(budget_kb: float | None, board: Board | None) -> str:
    return f"a budget of {budget_kb:g} KB" if budget_kb is not None else f"{board.name}"


def step_search(cfg: RunConfig, teacher: Teacher, budget_kb: float | None, board: Board | None,
                host: int, ui: Ui) -> Searched:
    """Price every candidate, short-train the best of each family on a validation split, and
    return the winner as the run's recipe. `host`: `check_budget`'s host parameter bits."""
    model_cfg = frontend_for(cfg.train.model).config
    target = _target(budget_kb, board)
    losses: dict[str, list[float]] = {}
    with ui.step("search", f"the most accurate compression that fits {target}"):
        calib = teacher_calibration(teacher.model, model_cfg, teacher.data)
        budget = None if budget_kb is None else int(budget_kb * 1024 * 8)
        cands = candidates(cfg.compress, model_cfg)
        for c in cands:
            price(c, structure_for(c.recipe, model_cfg, teacher.model, calib), model_cfg, host,
                  budget, board)
        val = holdout(teacher.data, seed=cfg.train.seed)
        short = max(1, cfg.compress.qat_epochs // 3)

        def score(c: Candidate) -> float:
            trial = dataclasses.replace(c.recipe, qat_epochs=short)
            label = f"trial {c.label}"
            result, losses[label] = _train_compressed(cfg.train, trial, teacher.model, val,
                                                      label, ui)
            acc = accuracy(result.student, val.x_test, val.y_test)
            ui.print(f"  {c.label}: {c.bits / 8192:.1f} KB, validation top-1 "
                     f"{acc:.2%} after {short} epochs")
            return acc

        best = choose(cands, score, target)
        chosen = (f"{best.label}: {best.why}; best validation top-1 "
                  f"({best.val_accuracy:.2%}) of the least compressed fitting candidate of "
                  f"each family")
        ui.print(f"  chose {chosen}")
    recipe = dataclasses.replace(best.recipe, qat_epochs=cfg.compress.qat_epochs)
    return Searched(recipe, chosen, cands, losses)
def shape_host_bits(model: str, split: Split) -> int:
    """The integer model's non-linear parameters (LayerNorm, embeddings, ROMs, scales): the
    same for every candidate. Their count follows from the shapes and the stored integer
    widths, not from the values, so a post-training-quantised *untrained* model of the same
    shapes gives it before any training (seconds)."""
    frontend = frontend_for(model)
    recipe, model_cfg = CompressionRecipe(weight_bits=8, qat_epochs=0), frontend.config
    with torch.random.fork_rng():
        torch.manual_seed(0)
        stand_in = frontend.float_model()
        student = compress(recipe, model_cfg, stand_in, split).student
    layers = export_compressed(recipe, model_cfg, student)
    return host_param_bits(calibrate_int_vit(student, layers, calibration_images(split)))


def check_budget(cfg: RunConfig, budget_kb: float | None, board: Board | None) -> int:
    """Before any training: the host parameter bits the search prices every candidate with,
    after refusing a budget that even the smallest candidate cannot meet (the sizes follow
    from the shapes; only low-rank ranks wait for the teacher, and are bounded below)."""
    model_cfg = frontend_for(cfg.train.model).config
    host = shape_host_bits(cfg.train.model, load_digits_split(seed=cfg.train.seed))
    if budget_kb is not None:
        refuse_early(candidates(cfg.compress, model_cfg), model_cfg, host,
                     int(budget_kb * 1024 * 8), _target(budget_kb, board))
    return host


def step_export(cfg: RunConfig, teacher: Teacher, student: Student, ui: Ui) -> Exported:
    with ui.step("export", "integer-only model: intB weights, (M, S) requant, integer "
                           "LayerNorm, softmax, GELU, adds"):
        layers = export_compressed(cfg.compress, frontend_for(cfg.train.model).config,
                                   student.model)
        model = calibrate_int_vit(student.model, layers, calibration_images(teacher.data))
        x, y = teacher.data.x_test, teacher.data.y_test
        int_pred = torch.from_numpy(int_logits(model, x.numpy())).argmax(-1)
        acc = float((int_pred == y).float().mean())
        agreement = float((int_pred == predict(student.model, x).argmax(-1)).float().mean())
        sz = model_size(teacher.model, model.layers, host_param_bits(model))
        ui.print(f"  {len(model.layers)} linear layers; integer-only top-1 {acc:.2%}, agrees "
                 f"with QAT on {agreement:.2%} of test images")
        ui.print(f"  {sz.compressed_bytes / 1024:.1f} KB stored ({sz.ratio:.1f}x "
                 f"smaller than fp32); weights alone {sz.weight_ratio:.1f}x smaller")
    return Exported(model, acc, agreement, sz)
