"""`vitfpga run` and `vitfpga compress`: the named steps, each saving its artifact.

run: train_float -> compress -> export -> plan -> generate -> synth -> verify -> hil -> whole ->
report.
compress: train_float -> (search ->) compress -> export -> report. Everything is written into a
temporary directory that replaces `--out` only when the run completed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from vitfpga.config import RunConfig
from vitfpga.errors import BadInput, VerificationFailed
from vitfpga.hardware_steps import (
    check_tools,
    step_generate,
    step_hil,
    step_plan,
    step_synth,
    step_verify,
)
from vitfpga.hls.plan.boards import get_board
from vitfpga.model_steps import (
    check_budget,
    step_compress,
    step_export,
    step_search,
    step_train_float,
)
from vitfpga.outdir import atomic_output_dir, check_output_dir
from vitfpga.report import machine_info, write_report
from vitfpga.run_state import Run
from vitfpga.rundir import RunDir, config_toml
from vitfpga.whole_steps import step_whole

__all__ = ["compress_pipeline", "run_pipeline"]


def step_report(run: Run) -> dict[str, Any]:
    p, size = run.plan, run.size
    report = {
        "accuracy": {"float": run.accuracy["float"], "qat": run.accuracy["qat"],
                     "integer": run.accuracy["integer"], "rtl": run.accuracy.get("rtl")},
        "agreement_qat_integer": run.agreement,
        "size_bytes": {"fp32": size.fp32_bits // 8, "compressed": size.compressed_bytes},
        "compression_ratio": round(size.ratio, 3),
        "size": size.to_json(),
        "structure": {slot: spec.to_dict() for slot, spec in run.structure.items()},
        "search": _search_json(run),
        "plan": None if p is None else {
            "board": p.board, "pe": p.pe, "simd": p.simd, "weight_bits": p.weight_bits,
            "layers": len(p.layers), "bram36": p.bram36, "uram": p.uram, "dsp": p.dsp,
            "lut": p.lut, "bram_efficiency": p.bram_efficiency,
            "cycles_per_image": p.cycles_per_image, "clock_mhz": p.clock_mhz,
            "mac_utilisation": round(p.mac_utilisation, 4),
            "images_per_s": round(p.clock_mhz * 1e6 / p.cycles_per_image, 1)},
        "verification": [v.to_json() for v in run.verification],
        "hil": run.hil or None,
        "whole_model": run.whole or None,
        "resources": None if run.synth is None else {
            "planner": {"bram36": p.bram36, "uram": p.uram, "dsp": p.dsp, "lut": p.lut},
            "yosys": {"bram36": run.synth.bram36, "uram": run.synth.uram, "dsp": run.synth.dsp,
                      "lut": run.synth.lut, "ff": run.synth.ff, "lutram": run.synth.lutram,
                      "family": run.synth.family, "seconds": run.synth.seconds}},
        "config": run.cfg.to_json(),
        "timings_s": run.timings,
        "machine": machine_info(),
    }
    notes = [
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
    # The resolved configuration (a search's choice included) is the run's input record:
    # `plan`, `generate` and `export` read it back, never report.json.
    (run.out / RunDir.CONFIG).write_text(config_toml(run.cfg))
    write_report(run.out, report, run.history, notes)
    return report


def _search_json(run: Run) -> dict[str, Any] | None:
    if not run.search:
        return None
    return {"chosen": run.chosen, "candidates": [
        {"label": c.label, "family": c.family, "kb": round(c.bits / 8192, 2), "fits": c.fits,
         "why": c.why, "val_accuracy": c.val_accuracy} for c in run.search]}


def run_pipeline(cfg: RunConfig, out: Path, force: bool, console: Console) -> dict[str, Any]:
    check_output_dir(out, force)
    check_tools(cfg)
    # The tensors are tiny: one thread is 5-8x faster than two that spin against each other
    # (measured on the 2-core CI machine kind while a simulator build shared it).
    torch.set_num_threads(1)
    with atomic_output_dir(out, force) as tmp:
        run = Run(cfg=cfg, out=RunDir(tmp), console=console)
        for step in (step_train_float, step_compress, step_export, step_plan, step_generate,
                     step_synth, step_verify, step_hil, step_whole):
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


def compress_pipeline(cfg: RunConfig, out: Path, force: bool, console: Console,
                      budget_kb: float | None = None, board: str | None = None
                      ) -> dict[str, Any]:
    """`vitfpga compress`: teacher, (search,) compressed student, integer model, report; the
    directory is what `vitfpga plan`, `generate` and `export` take as RUN_DIR."""
    check_output_dir(out, force)
    target = None if board is None else get_board(board)
    torch.set_num_threads(1)
    search = budget_kb is not None or target is not None
    # A budget nothing can meet is refused here, from the shapes, before hours of training.
    host = check_budget(cfg, budget_kb, target) if search else 0
    with atomic_output_dir(out, force) as tmp:
        run = Run(cfg=cfg, out=RunDir(tmp), console=console)
        step_train_float(run)
        if search:
            step_search(run, budget_kb, target, host)
        step_compress(run)
        step_export(run)
        if budget_kb is not None and run.size.compressed_bytes > budget_kb * 1024:
            raise BadInput(f"the trained model takes {run.size.compressed_bytes / 1024:.1f} KB, "
                           f"over the {budget_kb:g} KB budget the search predicted it would fit")
        report = step_report(run)
    console.print(f"[bold green]done[/]: {out}/report.md, {out}/report.json")
    return report
