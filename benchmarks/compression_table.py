"""Compression methods side by side on the digits ViT, mean ± std over seeds.

    .venv/bin/python benchmarks/compression_table.py [--seeds 0 1 2] [--jobs 2] [--out DIR]

Every row starts from the same float teacher of its seed (120 epochs) and gets 30 QAT epochs
with distillation from the teacher unless its label says otherwise. Top-1 is on the 360-image
test split; for quantised rows it is the integer-only golden's (what the hardware computes),
with Brevitas' beside it. Sizes are real bits (quant/size.py): "weights" counts linear weights
only, as the compression papers do, each layer in the codec the engine stores it in; "whole"
adds the per-channel bias/requant tables and host parameters. "On chip" is what the encoded
weight streams occupy in the engine's weight memory on Pynq-Z2 (the planner's folding, before
block RAM fragmentation), and its share of what dense 8-bit lanes of the same folding take.
Writes table.md, results.json and pareto.png into --out, and prints the table and the machine.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from vitfpga.config import RunConfig
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, plan_model
from vitfpga.quant.compress import calibration_images, compress, export_compressed
from vitfpga.quant.data import load_digits_split
from vitfpga.quant.intvit import calibrate_int_vit, host_param_bits
from vitfpga.quant.model import PRESETS, ViT
from vitfpga.quant.prune import Pruner, PruneSpec
from vitfpga.quant.recipe import CompressionRecipe, LowRank, Prune, uniform_ranks
from vitfpga.quant.size import float_bits, model_size
from vitfpga.quant.train import accuracy, train
from vitfpga.report import machine_info
from vitfpga.runtime import logits as int_logits

BASE = RunConfig()
RECIPE, TRAIN = BASE.compress, BASE.train
HEAD8 = (("head", 8), ("patch_embed", 8))
HEAD4 = (("head", 4), ("patch_embed", 4))
# (label, recipe) of the quantised rows; the float rows are built in `_float_rows`.
ROWS: list[tuple[str, CompressionRecipe]] = [
    ("PTQ int8", dataclasses.replace(RECIPE, weight_bits=8, qat_epochs=0)),
    ("QAT-only int2 (head, patch embed int8)",
     dataclasses.replace(RECIPE, weight_bits=2, layer_bits=HEAD8)),
    ("plain SVD, int8, 35% of block params",
     dataclasses.replace(RECIPE, weight_bits=8, lowrank=LowRank.SVD, lowrank_keep=0.35)),
    ("activation-aware low-rank, int8, 35%",
     dataclasses.replace(RECIPE, weight_bits=8, lowrank=LowRank.AWARE, lowrank_keep=0.35)),
    ("shared decoders rank 12, int4",
     dataclasses.replace(RECIPE, weight_bits=4, shared_ranks=uniform_ranks(12))),
    ("QAT int4 + 2:4 N:M pruning (head, patch embed int8)",
     dataclasses.replace(RECIPE, weight_bits=4, prune=Prune.NM, prune_nm=(2, 4),
                         layer_bits=HEAD8)),
    ("combined: int2 + magnitude pruning 60% (head, patch embed int4)",
     dataclasses.replace(RECIPE, weight_bits=2, prune=Prune.MAGNITUDE, prune_sparsity=0.6,
                         layer_bits=HEAD4)),
    ("combined: int2 + magnitude pruning 50%, 60 QAT epochs",
     dataclasses.replace(RECIPE, weight_bits=2, prune=Prune.MAGNITUDE, prune_sparsity=0.5,
                         layer_bits=HEAD8, qat_epochs=60)),
    ("combined: int2 + magnitude pruning 70%, 60 QAT epochs",
     dataclasses.replace(RECIPE, weight_bits=2, prune=Prune.MAGNITUDE, prune_sparsity=0.7,
                         layer_bits=HEAD8, qat_epochs=60)),
    ("combined: int2 + aware low-rank 50% + compensation, 60 QAT epochs",
     dataclasses.replace(RECIPE, weight_bits=2, lowrank=LowRank.AWARE, lowrank_keep=0.5,
                         lowrank_compensate=300, layer_bits=HEAD4,
                         qat_epochs=60)),
    ("combined: int2 + aware low-rank 50% + compensation + magnitude pruning 50%",
     dataclasses.replace(RECIPE, weight_bits=2, lowrank=LowRank.AWARE, lowrank_keep=0.5,
                         lowrank_compensate=300, prune=Prune.MAGNITUDE, prune_sparsity=0.5,
                         layer_bits=HEAD4)),
]
PRUNE_SPARSITY = 0.63  # fp32 + bitmap: 32 / (1 + 0.37 * 32) = 2.5x on the weights


def _teacher(seed: int) -> tuple[ViT, object]:
    split = load_digits_split(seed=seed)
    torch.manual_seed(seed)
    teacher = ViT(PRESETS[TRAIN.model])
    train(teacher, split, epochs=TRAIN.float_epochs, lr=TRAIN.float_lr, seed=seed)
    return teacher, split


def _float_rows(teacher: ViT, split: object, seed: int) -> list[dict[str, object]]:
    total, weights = float_bits(teacher)
    rows = [{"row": "Original (fp32)", "top1": accuracy(teacher, split.x_test, split.y_test),
             "qat": None, "weight_bytes": weights // 8, "whole_bytes": total // 8}]
    pruned = copy.deepcopy(teacher)
    spec = PruneSpec(method="magnitude", sparsity=PRUNE_SPARSITY)
    pruner = Pruner(pruned, spec, RECIPE.qat_epochs)
    train(pruned, split, epochs=RECIPE.qat_epochs, lr=RECIPE.qat_lr, seed=seed + 1,
          teacher=teacher, kd_weight=RECIPE.kd_weight, on_epoch=pruner.step)
    pruner.finalize()
    p_total, p_weights = float_bits(pruned)
    rows.append({"row": f"magnitude pruning {PRUNE_SPARSITY:.0%} (fp32)",
                 "top1": accuracy(pruned, split.x_test, split.y_test), "qat": None,
                 "weight_bytes": p_weights // 8, "whole_bytes": p_total // 8})
    return rows


def _quant_row(label: str, recipe: CompressionRecipe, teacher: ViT, split: object,
               seed: int) -> dict[str, object]:
    model_cfg = PRESETS[TRAIN.model]
    student = compress(recipe, model_cfg, teacher, split, seed=seed).student
    layers = export_compressed(recipe, model_cfg, student)
    model = calibrate_int_vit(student, layers, calibration_images(split))
    size = model_size(teacher, layers, host_param_bits(model))
    pred = torch.from_numpy(int_logits(model, split.x_test.numpy())).argmax(-1)
    top1 = float((pred == split.y_test).float().mean())
    plan = plan_model(model.layers, model.rows(), get_board(BASE.hardware.board))
    return {"row": label, "top1": top1, "qat": accuracy(student, split.x_test, split.y_test),
            "weight_bytes": size.weight_bits // 8, "whole_bytes": size.compressed_bytes,
            "onchip_bits": plan.onchip_weight_bits, "dense8_bits": dense8_bits(plan),
            "codecs": sorted({s.codec for s in plan.layers})}


def dense8_bits(plan: ModelPlan) -> int:
    """Weight-memory bits of the plan's folding with every stored layer in dense 8-bit lanes
    (the engine before per-layer encoding, at its widest weights)."""
    stored = {s.w_base: s for s in plan.layers}.values()  # a shared array once
    return sum(math.ceil(s.n / plan.pe) * math.ceil(s.k / plan.simd) for s in stored) \
        * plan.pe * plan.simd * 8


def run_seed(seed: int) -> list[dict[str, object]]:
    torch.set_num_threads(1)
    start = time.perf_counter()
    teacher, split = _teacher(seed)
    rows = _float_rows(teacher, split, seed)
    for label, recipe in ROWS:
        rows.append(_quant_row(label, recipe, teacher, split, seed))
        r = rows[-1]
        print(f"  seed {seed}: {label}: top-1 {r['top1']:.2%}, {r['weight_bytes']} B of weights "
              f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    for r in rows:
        r["seed"] = seed
    return rows


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}"


def summarise(results: list[dict[str, object]]) -> list[dict[str, object]]:
    fp32 = next(r for r in results if r["row"] == "Original (fp32)")
    out = []
    for label in dict.fromkeys(r["row"] for r in results):
        rs = [r for r in results if r["row"] == label]
        qat = [r["qat"] for r in rs if r["qat"] is not None]
        weight = statistics.mean(r["weight_bytes"] for r in rs)  # codecs vary a little by seed
        whole = statistics.mean(r["whole_bytes"] for r in rs)
        onchip = [r["onchip_bits"] / r["dense8_bits"] for r in rs if "onchip_bits" in r]
        out.append({"row": label, "weight_kb": weight / 1024, "whole_kb": whole / 1024,
                    "onchip_kb": (statistics.mean(r["onchip_bits"] for r in rs) / 8 / 1024
                                  if onchip else None),
                    "onchip_share": statistics.mean(onchip) if onchip else None,
                    "weight_ratio": fp32["weight_bytes"] / weight,
                    "whole_ratio": fp32["whole_bytes"] / whole,
                    "top1": _mean_std([r["top1"] for r in rs]),
                    "top1_mean": statistics.mean(r["top1"] for r in rs),
                    "qat": _mean_std(qat) if qat else "—"})
    return out


def markdown(rows: list[dict[str, object]], seeds: list[int], seconds: float) -> str:
    m = machine_info()
    lines = [f"Digits ViT, seeds {', '.join(map(str, seeds))}: top-1 (%) mean ± std on the test "
             f"split; integer-only golden for quantised rows, Brevitas beside it. Sizes are "
             f"means over the seeds.", "",
             "| method | weights KB | ratio (weights) | whole KB | ratio (whole) | on chip KB "
             "(of dense 8-bit lanes) | top-1 | Brevitas top-1 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        onchip = ("—" if r["onchip_kb"] is None
                  else f"{r['onchip_kb']:.2f} ({r['onchip_share']:.0%})")
        lines.append(f"| {r['row']} | {r['weight_kb']:.2f} | {r['weight_ratio']:.1f}x | "
                     f"{r['whole_kb']:.2f} | {r['whole_ratio']:.1f}x | {onchip} | {r['top1']} | "
                     f"{r['qat']} |")
    took = (f"{seconds / 60:.1f} min wall" if seconds > 1
            else "table rebuilt from a saved results.json")
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; {took}."]
    return "\n".join(lines) + "\n"


def pareto(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.6))
    for i, r in enumerate(rows, 1):
        ax.scatter(r["weight_kb"], 100 * r["top1_mean"], label=f"{i}. {r['row']}")
        ax.annotate(str(i), (r["weight_kb"], 100 * r["top1_mean"]), fontsize=8,
                    xytext=(4, 2), textcoords="offset points")
    # The Pareto front: no other row is both smaller and more accurate.
    front = sorted((r["weight_kb"], 100 * r["top1_mean"]) for r in rows
                   if not any(o["weight_kb"] < r["weight_kb"] and o["top1_mean"] > r["top1_mean"]
                              for o in rows))
    ax.plot(*zip(*front, strict=True), color="grey", linewidth=0.8, zorder=0)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    ax.set_xscale("log")
    ax.set_xlabel("compressed linear weights (KB, log scale)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("Digits ViT: accuracy vs compressed size (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2, help="seeds trained in parallel")
    ap.add_argument("--out", type=Path, default=Path("runs/compression_table"))
    ap.add_argument("--summarise", type=Path, default=None,
                    help="redo the table and plot from a results.json, without training")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    if args.summarise is not None:
        results = json.loads(args.summarise.read_text())
        args.seeds = sorted({int(r["seed"]) for r in results})
    else:
        run: Callable[[int], list[dict[str, object]]] = run_seed
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = [r for rows in pool.map(run, args.seeds) for r in rows]
    rows = summarise(results)
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, args.seeds,
                    0.0 if args.summarise is not None else time.perf_counter() - start)
    (args.out / "table.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    pareto(rows, args.out / "pareto.png")
    print(text)


if __name__ == "__main__":
    main()
