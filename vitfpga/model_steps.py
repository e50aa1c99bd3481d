"""The model steps: float teacher, (budget search,) compressed student, integer-only model.
Each saves its artifact into the run directory."""

from __future__ import annotations

import dataclasses
import json

import torch

from vitfpga.config import RunConfig
from vitfpga.hls.plan.boards import Board
from vitfpga.quant.compress import (
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
from vitfpga.quant.size import model_size
from vitfpga.quant.train import accuracy, predict, train
from vitfpga.run_state import Run, progress, step
from vitfpga.rundir import RunDir
from vitfpga.runtime import logits as int_logits
from vitfpga.search import Candidate, candidates, choose, price, refuse_early

__all__ = ["check_budget", "shape_host_bits", "step_compress", "step_export", "step_search",
           "step_train_float"]


def step_train_float(run: Run) -> None:
    cfg, frontend = run.cfg.train, frontend_for(run.cfg.train.model)
    with step(run, "train_float", f"{cfg.model}: {frontend.config.describe()}"):
        run.split = load_digits_split(seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        run.teacher = frontend.float_model()
        with progress(run, "float", cfg.float_epochs) as on_loss:
            train(run.teacher, run.split, epochs=cfg.float_epochs, lr=cfg.float_lr,
                  seed=cfg.seed, on_epoch=lambda _, loss: on_loss(loss))
        run.accuracy["float"] = accuracy(run.teacher, run.split.x_test, run.split.y_test)
        torch.save(run.teacher.state_dict(), run.out / RunDir.FLOAT)
        run.console.print(f"  float top-1 {run.accuracy['float']:.2%} "
                          f"on {len(run.split.y_test)} test images")


def step_compress(run: Run) -> None:
    recipe = run.cfg.compress
    with step(run, "compress", f"Brevitas QAT with distillation (weight {recipe.kd_weight}): "
                                f"{recipe.describe()}"):
        run.student = _train_compressed(run, recipe, run.split, "qat")
        run.accuracy["qat"] = accuracy(run.student, run.split.x_test, run.split.y_test)
        torch.save(run.student.state_dict(), run.out / RunDir.QAT)
        (run.out / RunDir.STRUCTURE).write_text(json.dumps(
            {slot: spec.to_dict() for slot, spec in run.structure.items()}, indent=2) + "\n")
        run.console.print(f"  QAT top-1 {run.accuracy['qat']:.2%}")


def _train_compressed(run: Run, recipe: CompressionRecipe, split: Split, label: str) -> ViT:
    train_cfg = run.cfg.train
    with progress(run, label, max(recipe.qat_epochs, 1)) as on_loss:
        result = compress(recipe, frontend_for(train_cfg.model).config, run.teacher, split,
                          lambda _, loss: on_loss(loss), seed=train_cfg.seed)
    run.structure = result.structure
    return result.student


def _target(budget_kb: float | None, board: Board | None) -> str:
    return f"a budget of {budget_kb:g} KB" if budget_kb is not None else f"{board.name}"


def step_search(run: Run, budget_kb: float | None, board: Board | None, host: int) -> None:
    """Price every candidate, short-train the best of each family on a validation split, and
    keep the winner as the run's recipe. `host`: `check_budget`'s host parameter bits."""
    cfg, model_cfg = run.cfg, frontend_for(run.cfg.train.model).config
    target = _target(budget_kb, board)
    with step(run, "search", f"the most accurate compression that fits {target}"):
        calib = teacher_calibration(run.teacher, model_cfg, run.split)
        budget = None if budget_kb is None else int(budget_kb * 1024 * 8)
        run.search = cands = candidates(cfg.compress, model_cfg)
        for c in cands:
            price(c, structure_for(c.recipe, model_cfg, run.teacher, calib), model_cfg, host,
                  budget, board)
        val = holdout(run.split, seed=cfg.train.seed)
        short = max(1, cfg.compress.qat_epochs // 3)

        def score(c: Candidate) -> float:
            trial = dataclasses.replace(c.recipe, qat_epochs=short)
            student = _train_compressed(run, trial, val, f"trial {c.label}")
            acc = accuracy(student, val.x_test, val.y_test)
            run.console.print(f"  {c.label}: {c.bits / 8192:.1f} KB, validation top-1 "
                              f"{acc:.2%} after {short} epochs")
            return acc

        best = choose(cands, score, target)
        run.cfg = dataclasses.replace(cfg, compress=dataclasses.replace(
            best.recipe, qat_epochs=cfg.compress.qat_epochs))
        run.chosen = (f"{best.label}: {best.why}; best validation top-1 "
                      f"({best.val_accuracy:.2%}) of the least compressed fitting candidate of "
                      f"each family")
        run.console.print(f"  chose {run.chosen}")


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


def step_export(run: Run) -> None:
    with step(run, "export", "integer-only model: intB weights, (M, S) requant, integer "
                              "LayerNorm, softmax, GELU, adds"):
        cfg = run.cfg
        layers = export_compressed(cfg.compress, frontend_for(cfg.train.model).config,
                                   run.student)
        run.model = model = calibrate_int_vit(run.student, layers, calibration_images(run.split))
        model.save(str(run.out / RunDir.MODEL))
        x, y = run.split.x_test, run.split.y_test
        int_pred = torch.from_numpy(int_logits(model, x.numpy())).argmax(-1)
        run.accuracy["integer"] = float((int_pred == y).float().mean())
        run.agreement = float((int_pred == predict(run.student, x).argmax(-1)).float().mean())
        run.size = sz = model_size(run.teacher, model.layers, host_param_bits(model))
        run.console.print(f"  {len(model.layers)} linear layers; integer-only top-1 "
                          f"{run.accuracy['integer']:.2%}, agrees with QAT on "
                          f"{run.agreement:.2%} of test images")
        run.console.print(f"  {sz.compressed_bytes / 1024:.1f} KB stored ({sz.ratio:.1f}x "
                          f"smaller than fp32); weights alone {sz.weight_ratio:.1f}x smaller")

