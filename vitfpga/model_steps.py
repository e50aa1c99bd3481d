"""The model stages: float teacher, (budget search,) compressed student, integer-only model.
Each takes values and returns one; the pipeline saves its artifact."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from vitfpga.config import RunConfig
from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import Board
from vitfpga.ir import IntModel
from vitfpga.quant.compress import (
    Compressed,
    calibration_images,
    compress,
    export_compressed,
    post_training_quantise,
    structure_for,
    teacher_calibration,
)
from vitfpga.quant.data import DataInfo, Split, check_geometry, holdout, load_data, scan_data
from vitfpga.quant.frontend import Frontend, ImportCheck, frontend_for, import_check
from vitfpga.quant.intvit import calibrate_int_vit, host_param_bits
from vitfpga.quant.model import ViT
from vitfpga.quant.recipe import CompressionRecipe
from vitfpga.quant.size import SizeReport, model_size
from vitfpga.quant.structure import Structure
from vitfpga.quant.train import accuracy_set, predict_set, resolve_device, train
from vitfpga.runtime import logits as int_logits
from vitfpga.runtime.model import ModelSpec
from vitfpga.search import Candidate, candidates, choose, price, refuse_early
from vitfpga.ui import Ui

__all__ = ["Exported", "Searched", "Student", "Teacher", "check_budget", "shape_host_bits",
           "step_compress", "step_export", "step_search", "step_train_float"]


@dataclass(frozen=True)
class Source:
    """What a run starts from, resolved before any training: the model's frontend (its
    refusals already raised) and the scanned data (its refusals too)."""

    frontend: Frontend
    data: DataInfo


@dataclass(frozen=True)
class Teacher:
    model: ViT  # vitfpga's float ViT: what compression and export work on
    source: nn.Module  # the user's own PyTorch module (a preset: the same ViT)
    frontend: Frontend
    data: Split  # the split every later stage tests on
    accuracy: float
    losses: list[float]
    imported: ImportCheck | None  # the float ViT against the user's module (None: a preset)


@dataclass(frozen=True)
class Student:
    model: ViT
    structure: Structure
    accuracy: float
    losses: list[float]
    agreement: float  # top-1 agreement with the float teacher on the test split


@dataclass(frozen=True)
class Exported:
    model: IntModel
    accuracy: float
    agreement: float  # top-1 agreement with the QAT student
    agreement_with_pytorch: float  # top-1 agreement with the user's float PyTorch module
    size: SizeReport


@dataclass(frozen=True)
class Searched:
    recipe: CompressionRecipe  # the winner, to be trained for the run's full epochs
    chosen: str  # why it won, for the report
    candidates: list[Candidate]
    losses: dict[str, list[float]]  # each trial's training losses, by label


def resolve_source(cfg: RunConfig) -> tuple[RunConfig, Source]:
    """The data scanned and the model built and inspected: every refusal (bad images, an
    unsupported layer, a checkpoint that does not match) happens here, before training. The
    configuration comes back with the model's normalisation filled in ([data] mean and std,
    unless given), so the saved config.toml reproduces the run's images without the model."""
    info = scan_data(cfg.data.source or None, cfg.data.max_images, cfg.train.seed)
    frontend = frontend_for(cfg.train.model, cfg.train.model_kwargs(),
                            cfg.train.weights or None, num_classes=info.num_classes,
                            in_chans=info.in_chans, seed=cfg.train.seed)
    spec = frontend.spec
    if spec.num_classes < info.num_classes:
        raise BadInput(f"the model has {spec.num_classes} classes but the data has "
                       f"{info.num_classes}")
    dc = frontend.data_config
    if dc is not None and not cfg.data.mean:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(
            cfg.data, mean=tuple(dc.mean), std=tuple(dc.std)))
    check_geometry(info, spec.image_size, spec.in_chans, spec.patch_size,
                   cfg.data.mean or None, cfg.data.std or None)
    return cfg, Source(frontend, info)


def load_split(cfg: RunConfig, spec: ModelSpec, info: DataInfo) -> Split:
    """The run's split, resized and normalised for the model (`cfg.data` mean and std; none:
    the dataset's own normalisation)."""
    return load_data(info, image_size=spec.image_size, in_chans=spec.in_chans,
                     mean=cfg.data.mean or None, std=cfg.data.std or None,
                     seed=cfg.train.seed, test_fraction=cfg.data.test_fraction,
                     patch_size=spec.patch_size)


def step_train_float(cfg: RunConfig, source: Source, ui: Ui) -> Teacher:
    frontend, device = source.frontend, resolve_device(cfg.train.device)
    with ui.step("train_float", f"{cfg.train.model}: {frontend.config.describe()}"):
        split = load_split(cfg, frontend.spec, source.data)
        ui.print(f"  data: {source.data.describe()}; {len(split.train)} train, "
                 f"{len(split.test)} test images")
        torch.manual_seed(cfg.train.seed)
        model = frontend.source_model()
        losses: list[float] = []
        if frontend.pretrained:
            ui.print(f"  float weights from {cfg.train.weights}: no training")
        else:
            with ui.progress("float", cfg.train.float_epochs, losses) as on_loss:
                train(model, split, epochs=cfg.train.float_epochs, lr=cfg.train.float_lr,
                      seed=cfg.train.seed, device=device,
                      on_epoch=lambda _, loss: on_loss(loss))
        teacher, imported = frontend.to_vit(model), None
        if teacher is not model:
            imported = _import_check(cfg.train.model, model, teacher,
                                     calibration_images(split), ui)
        acc = accuracy_set(teacher, split.test, device=device)
        ui.print(f"  float top-1 {acc:.2%} on {len(split.test)} test images")
    return Teacher(teacher, model, frontend, split, acc, losses, imported)


def _import_check(name: str, source: nn.Module, vit: ViT, images: torch.Tensor, ui: Ui
                  ) -> ImportCheck:
    check = import_check(source, vit, images)
    ui.print(f"  import check: max |Δ logits| {check.max_abs_diff:.3g} over a logit range of "
             f"{check.logit_range:.3g} on {check.images} images")
    return check.require(name)


def step_compress(cfg: RunConfig, teacher: Teacher, ui: Ui) -> Student:
    recipe, split = cfg.compress, teacher.data
    with ui.step("compress", f"Brevitas QAT with distillation (weight {recipe.kd_weight}): "
                             f"{recipe.describe()}"):
        result, losses = _train_compressed(cfg, recipe, teacher, split, "qat", ui)
        device = resolve_device(cfg.train.device)
        pred = predict_set(result.student, split.test, device=device).argmax(-1)
        acc = float((pred == split.test.labels).float().mean())
        agree = float((pred == predict_set(teacher.model, split.test, device=device).argmax(-1))
                      .float().mean())
        ui.print(f"  QAT top-1 {acc:.2%}; agrees with the float teacher on {agree:.2%}")
    return Student(result.student, result.structure, acc, losses, agree)


def _train_compressed(cfg: RunConfig, recipe: CompressionRecipe, teacher: Teacher, split: Split,
                      label: str, ui: Ui) -> tuple[Compressed, list[float]]:
    losses: list[float] = []
    with ui.progress(label, max(recipe.qat_epochs, 1), losses) as on_loss:
        result = compress(recipe, teacher.frontend.config, teacher.model, split,
                          lambda _, loss: on_loss(loss), seed=cfg.train.seed,
                          device=resolve_device(cfg.train.device))
    return result, losses


def _target(budget_kb: float | None, board: Board | None) -> str:
    return f"a budget of {budget_kb:g} KB" if budget_kb is not None else f"{board.name}"


def step_search(cfg: RunConfig, teacher: Teacher, budget_kb: float | None, board: Board | None,
                host: int, ui: Ui) -> Searched:
    """Price every candidate, short-train the best of each family on a validation split, and
    return the winner as the run's recipe. `host`: `check_budget`'s host parameter bits."""
    model_cfg = teacher.frontend.config
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
            result, losses[label] = _train_compressed(cfg, trial, teacher, val, label, ui)
            acc = accuracy_set(result.student, val.test,
                               device=resolve_device(cfg.train.device))
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


def shape_host_bits(frontend: Frontend, images: torch.Tensor) -> int:
    """The integer model's non-linear parameters (LayerNorm, embeddings, ROMs, scales): the
    same for every candidate. Their count follows from the shapes and the stored integer
    widths, not from the values, so a post-training-quantised *untrained* model of the same
    shapes gives it before any training (seconds)."""
    recipe = CompressionRecipe(weight_bits=8, qat_epochs=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        stand_in = frontend.float_model()
        model = post_training_quantise(recipe, frontend.config, stand_in, images)
    return host_param_bits(model)


def check_budget(cfg: RunConfig, source: Source, budget_kb: float | None, board: Board | None
                 ) -> int:
    """Before any training: the host parameter bits the search prices every candidate with,
    after refusing a budget that even the smallest candidate cannot meet (the sizes follow
    from the shapes; only low-rank ranks wait for the teacher, and are bounded below)."""
    model_cfg = source.frontend.config
    images = calibration_images(load_split(cfg, source.frontend.spec, source.data))
    host = shape_host_bits(source.frontend, images)
    if budget_kb is not None:
        refuse_early(candidates(cfg.compress, model_cfg), model_cfg, host,
                     int(budget_kb * 1024 * 8), _target(budget_kb, board))
    return host


def test_predictions(model: IntModel, split: Split) -> torch.Tensor:
    """The integer model's top-1 class of every test image, streamed in batches."""
    preds = [torch.from_numpy(int_logits(model, x.numpy())).argmax(-1)
             for x, _ in split.test.batches(256)]
    return torch.cat(preds)


def step_export(cfg: RunConfig, teacher: Teacher, student: Student, ui: Ui) -> Exported:
    with ui.step("export", "integer-only model: intB weights, (M, S) requant, integer "
                           "LayerNorm, softmax, GELU, adds"):
        layers = export_compressed(cfg.compress, teacher.frontend.config, student.model)
        model = calibrate_int_vit(student.model, layers, calibration_images(teacher.data))
        y, int_pred = teacher.data.test.labels, test_predictions(model, teacher.data)
        acc = float((int_pred == y).float().mean())
        agreement = float((int_pred == predict_set(student.model, teacher.data.test).argmax(-1))
                          .float().mean())
        source = float((int_pred == predict_set(teacher.source, teacher.data.test).argmax(-1))
                       .float().mean())
        sz = model_size(teacher.model, model.layers, host_param_bits(model))
        ui.print(f"  {len(model.layers)} linear layers; integer-only top-1 {acc:.2%}, agrees "
                 f"with QAT on {agreement:.2%} and with the PyTorch model on {source:.2%} of "
                 f"test images")
        ui.print(f"  {sz.compressed_bytes / 1024:.1f} KB stored ({sz.ratio:.1f}x "
                 f"smaller than fp32); weights alone {sz.weight_ratio:.1f}x smaller")
    return Exported(model, acc, agreement, source, sz)
