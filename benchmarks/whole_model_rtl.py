"""Whole images through the whole-model RTL on Verilator: a hardware preset's whole-model
project as `vitfpga generate --preset NAME --whole` writes it (seeded random weights, the other
parameters calibrated on a random float ViT of that shape), its URAM words loaded at start-up,
then random images in, logits out, every logit compared with the integer golden.

    .venv/bin/python benchmarks/whole_model_rtl.py --preset deit-tiny --board kv260 \\
        --weight-bits 2 --images 1
    .venv/bin/python benchmarks/whole_model_rtl.py --preset vit-1m --board pynq-z2 \\
        --weight-bits 2 --codec ternary --images 8

Prints the machine, the folding, the measured cycles per image beside the planner's ideal (a
lower bound), images/s at the board clock (a plan: no place-and-route behind the clock), and the
simulation's wall time. Writes results.json into --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from vitfpga.hls.emit.project import WholeModel, write_project
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import LUT_BUDGET, folding_label
from vitfpga.hls.plan.whole import WHOLE_MAX_LANES
from vitfpga.quant.model import HARDWARE_PRESETS, ViT
from vitfpga.report import machine_info
from vitfpga.runtime.forward import logits
from vitfpga.sim.vit import run_vit
from vitfpga.sources import preset_driver_source, preset_int_model
from vitfpga.whole_steps import whole_design


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="vit-1m")
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--weight-bits", type=int, default=2)
    ap.add_argument("--codec", default="dense")
    ap.add_argument("--max-lanes", type=int, default=WHOLE_MAX_LANES)
    ap.add_argument("--lut-budget", type=float, default=LUT_BUDGET,
                    help="share of the board's LUTs the design may take (the planner's 0.70)")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("runs/whole_model_rtl"))
    args = ap.parse_args(argv)
    print("machine:", json.dumps(machine_info()))
    board = get_board(args.board)
    t0 = time.monotonic()
    model, layers, _, label = preset_int_model(args.preset, args.weight_bits, codec=args.codec)
    plan, prog, wplan = whole_design(model, layers, model.rows(), board, args.max_lanes,
                                     args.lut_budget)
    project = args.out / "project"
    write_project(plan, layers, project, board=board,
                  source=preset_driver_source(args.preset, model),
                  whole=WholeModel(prog, wplan))
    # Parameters as the float model counts them (weights, biases, LayerNorm, embeddings).
    params = sum(p.numel() for p in ViT(HARDWARE_PRESETS[args.preset]).parameters())
    print(f"{label}: {params:,} parameters; {folding_label(plan.pe, plan.simd, plan.groups)}, "
          f"LayerNorm "
          f"{prog.ln_lanes} lanes, softmax {prog.sm_lanes}, on "
          f"{board.name}; weight words {plan.rom_depth:,} in the bitstream ROM, "
          f"{plan.ram_depth:,} in URAM; {wplan.bram36:g} BRAM36, {wplan.uram} URAM, "
          f"{wplan.dsp} DSP, ~{wplan.lut:,} LUT (planner); generated in "
          f"{time.monotonic() - t0:.0f} s", flush=True)
    spec = model.spec
    images = np.random.default_rng(0).standard_normal(
        (args.images, spec.in_chans, spec.image_size, spec.image_size)).astype(np.float32)
    expected = logits(model, images)
    t1 = time.monotonic()
    r = run_vit(project / "rtl", prog, plan, model, images, "verilator", args.out / "build")
    wall = time.monotonic() - t1
    mismatches = int((r.logits != expected).sum())
    cycles = r.cycles_per_image
    result = {
        "machine": machine_info(), "preset": args.preset, "label": label, "board": board.name,
        "clock_mhz": board.clock_mhz, "pe": plan.pe, "simd": plan.simd, "groups": plan.groups,
        "ln_lanes": prog.ln_lanes, "sm_lanes": prog.sm_lanes, "params": int(params),
        "images": args.images, "logits_compared": int(r.logits.size), "mismatches": mismatches,
        "cycles_per_image": cycles, "ideal_cycles_per_image": wplan.ideal_cycles_per_image,
        "cycles_vs_ideal": cycles / wplan.ideal_cycles_per_image,
        "images_per_s_planned": board.clock_mhz * 1e6 / cycles,
        "gops_planned": 2 * wplan.macs_per_image * board.clock_mhz * 1e6 / cycles / 1e9,
        "ideal_by_unit": wplan.ideal_by_unit, "simulation_wall_s": round(wall, 1),
        "bram36": wplan.bram36, "uram": wplan.uram, "dsp": wplan.dsp, "lut_estimate": wplan.lut,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.images} images on Verilator in {wall:,.0f} s wall: {r.logits.size} logits, "
          f"{mismatches} mismatches; {cycles:,.0f} cycles per image (ideal, a lower bound: "
          f"{wplan.ideal_cycles_per_image:,}, {result['cycles_vs_ideal']:.3f}x); "
          f"{result['images_per_s_planned']:,.1f} images/s, {result['gops_planned']:,.1f} GOPS "
          f"at {board.clock_mhz:g} MHz (planned clock, no place-and-route)")
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
