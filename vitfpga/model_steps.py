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
from vitfpga.quant.export import save_int_model
from vitfpga.quant.intvit import calibrate_int_vit, host_param_bits, save_int_vit
from vitfpga.quant.model import PRESETS, ViT
from vitfpga.quant.size import model_size
from vitfpga.quant.train import accuracy, predict, train
from vitfpga.run_state import Run, progress, step
from vitfpga.search import Candidate, candidates, choose, price

__all__ = ["step_compress", "step_export", "step_search", "step_train_float"]


def step_train_float(run: Run) -> None:
    cfg, model_cfg = run.cfg, PRESETS[run.cfg.model]
    with step(run, "train_float", f"{cfg.model}: {model_cfg.describe()}"):
        run.split = load_digits_split(seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        run.teacher = ViT(model_cfg)
        with progress(run, "float", cfg.float_epochs) as on_loss:
            train(run.teacher, run.split, epochs=cfg.float_epochs, lr=cfg.float_lr,
                  seed=cfg.seed, on_epoch=lambda _, loss: on_loss(loss))
        run.accuracy["float"] = accuracy(run.teacher, run.split.x_test, run.split.y_test)
        torch.save(run.teacher.state_dict(), run.out / "float.pt")
        run.console.print(f"  float top-1 {run.accuracy['float']:.2%} "
                          f"on {len(run.split.y_test)} test images")


def step_compress(run: Run) -> None:
    cfg = run.cfg
    with step(run, "compress", f"Brevitas QAT with distillation (weight {cfg.kd_weight}): "
                                f"{_recipe(cfg)}"):
        run.student = _train_compressed(run, cfg, run.split, "qat")
        run.accuracy["qat"] = accuracy(run.student, run.split.x_test, run.split.y_test)
        torch.save(run.student.state_dict(), run.out / "qat.pt")
        (run.out / "structure.json").write_text(json.dumps(
            {slot: spec.to_dict() for slot, spec in run.structure.items()}, indent=2) + "\n")
        run.console.print(f"  QAT top-1 {run.accuracy['qat']:.2%}")


def _recipe(cfg: RunConfig) -> str:
    parts = [f"int{cfg.weight_bits} per-channel weights, int8 activations"]
    if cfg.layer_bits:
        parts.append("mixed precision " + ", ".join(cfg.layer_bits))
    if cfg.prune != "none":
        parts.append(f"{cfg.prune_nm} N:M pruning" if cfg.prune == "nm" else
                     f"{cfg.prune} pruning to {cfg.prune_sparsity:.0%}")
    if cfg.lowrank != "none":
        parts.append(f"{cfg.lowrank} low-rank keeping {cfg.lowrank_keep:.0%} of block weights"
                     + (f" + {cfg.lowrank_sparse:.0%} sparse" if cfg.lowrank_sparse else ""))
    if shared := ", ".join(f"{t} {r}" for t, r in cfg.shared_ranks().items() if r):
        parts.append(f"shared decoders of rank {shared}")
    return ", ".join(parts)


def _train_compressed(run: Run, cfg: RunConfig, split: Split, label: str) -> ViT:
    with progress(run, label, max(cfg.qat_epochs, 1)) as on_loss:
        result = compress(cfg, PRESETS[cfg.model], run.teacher, split,
                          lambda _, loss: on_loss(loss))
    run.structure = result.structure
    return result.student


def step_search(run: Run, budget_kb: float | None, board: Board | None) -> None:
    """Price every candidate, short-train the best of each family on a validation split, and
    keep the winner as the run's config."""
    cfg, model_cfg = run.cfg, PRESETS[run.cfg.model]
    target = f"a budget of {budget_kb:g} KB" if budget_kb is not None else f"{board.name}"
    with step(run, "search", f"the most accurate compression that fits {target}"):
        calib = teacher_calibration(run.teacher, model_cfg, run.split)
        host = _host_bits(run)
        budget = None if budget_kb is None else int(budget_kb * 1024 * 8)
        run.search = cands = candidates(cfg, model_cfg)
        for c in cands:
            price(c, structure_for(c.cfg, model_cfg, run.teacher, calib), model_cfg, host,
                  budget, board)
        val = holdout(run.split, seed=cfg.seed)
        short = max(1, cfg.qat_epochs // 3)

        def score(c: Candidate) -> float:
            trial = dataclasses.replace(c.cfg, qat_epochs=short)
            student = _train_compressed(run, trial, val, f"trial {c.label}")
            acc = accuracy(student, val.x_test, val.y_test)
            run.console.print(f"  {c.label}: {c.bits / 8192:.1f} KB, validation top-1 "
                              f"{acc:.2%} after {short} epochs")
            return acc

        best = choose(cands, score, target)
        run.cfg = dataclasses.replace(best.cfg, qat_epochs=cfg.qat_epochs)
        run.chosen = (f"{best.label}: {best.why}; best validation top-1 "
                      f"({best.val_accuracy:.2%}) of the least compressed fitting candidate of "
                      f"each family")
        run.console.print(f"  chose {run.chosen}")


def _host_bits(run: Run) -> int:
    """The integer model's non-linear parameters: the same for every candidate, so measured
    once on a post-training-quantised student (seconds, no training)."""
    cfg = dataclasses.replace(run.cfg, prune="none", lowrank="none", shared_rank=0,
                              shared_type_ranks=(),
                              qat_epochs=0, layer_bits=(), weight_bits=8)
    student = compress(cfg, PRESETS[cfg.model], run.teacher, run.split).student
    layers = export_compressed(cfg, PRESETS[cfg.model], student)
    return host_param_bits(calibrate_int_vit(student, layers, calibration_images(run.split)))


def step_export(run: Run) -> None:
    with step(run, "export", "integer-only model: intB weights, (M, S) requant, integer "
                              "LayerNorm, softmax, GELU, adds"):
        cfg = run.cfg
        run.layers = export_compressed(cfg, PRESETS[cfg.model], run.student)
        save_int_model(run.layers, str(run.out / "int_model.npz"))
        run.ivit = calibrate_int_vit(run.student, run.layers, calibration_images(run.split))
        save_int_vit(run.ivit, str(run.out / "int_vit.npz"))
        x, y = run.split.x_test, run.split.y_test
        int_pred = run.ivit.logits(x).argmax(-1)
        run.accuracy["integer"] = float((int_pred == y).float().mean())
        run.agreement = float((int_pred == predict(run.student, x).argmax(-1)).float().mean())
        run.size = sz = model_size(run.teacher, run.layers, host_param_bits(run.ivit))
        run.console.print(f"  {len(run.layers)} linear layers; integer-only top-1 "
                          f"{run.accuracy['integer']:.2%}, agrees with QAT on "
                          f"{run.agreement:.2%} of test images")
        run.console.print(f"  {sz.compressed_bytes / 1024:.1f} KB stored ({sz.ratio:.1f}x "
                          f"smaller than fp32); weights alone {sz.weight_ratio:.1f}x smaller")

