"""Measured vs ideal engine cycles per layer, and RTL simulation speed.

Two workloads, both on the whole-model engine the planner folds for a board:
- the digits ViT's 14 layers (from a `vitfpga run` directory with --run, else the same shapes with
  seeded random weights), every layer once per session, 4 images' worth of rows;
- one full DeiT-Tiny-size layer (blocks.11.mlp.fc1: 197 tokens x 192 -> 768) on the KV260 plan
  of all 50 DeiT-Tiny layers, seeded random int3 weights (not a trained model), bit-exact. Its
  weights sit in the URAM part that the session first loads over the input stream, as a board's
  driver does at start-up (URAM cannot be initialised by the bitstream).

Prints tables and the machine; asserts nothing about time. Times are medians of --repeats.

    .venv/bin/python benchmarks/engine_cycles.py [--run runs/demo] [--sims verilator,icarus]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitfpga.hls.emit.rtl import emit_rtl
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, plan_model
from vitfpga.ir import IntLinear
from vitfpga.quant.model import PRESETS, linear_shapes
from vitfpga.quant.synthetic import random_layer, random_rows
from vitfpga.report import machine_info
from vitfpga.runtime.model import linear_golden
from vitfpga.sim.rtl import RtlSession
from vitfpga.sim.tools import simulator_status
from vitfpga.sources import preset_layers, run_layers


def _digits(run: Path | None) -> tuple[dict[str, IntLinear], dict[str, int], str]:
    if run is not None:
        return run_layers(run)
    shapes = linear_shapes(PRESETS["vit-digits"])
    layers = {name: random_layer(k, n, seed=i, name=name)
              for i, (name, k, n, _) in enumerate(shapes)}
    return layers, {name: r for name, _, _, r in shapes}, "vit-digits shapes, random int4"


def _session(plan: ModelPlan, layers: dict[str, IntLinear], sim: str, jobs: list[str],
             rows: dict[str, int], repeats: int) -> list[tuple[str, int, int, int, float]]:
    """(layer, rows, ideal, measured, median seconds) per job; every run checked bit-exact."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        emit_rtl(plan, layers, Path(tmp))
        start = time.perf_counter()
        with RtlSession(Path(tmp) / "rtl", plan, sim, Path(tmp) / "build") as rtl:
            loaded = (f", then a weight load of {plan.ram_depth:,} words into {plan.uram} URAM"
                      if plan.ram_depth else "")
            print(f"  {sim}: build and start{loaded}: {time.perf_counter() - start:.1f} s")
            for name in jobs:
                x = random_rows(rows[name], layers[name].k, seed=len(out))
                expected = linear_golden(x, layers[name])
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    run = rtl.run(name, x)
                    times.append(time.perf_counter() - t0)
                    assert (run.y == expected).all(), f"{sim} {name}: not bit-exact"
                out.append((name, rows[name], run.ideal_cycles, run.cycles,
                            statistics.median(times)))
    return out


def _print(results: list[tuple[str, int, int, int, float]]) -> None:
    print(f"  {'layer':22} {'rows':>5} {'ideal':>9} {'measured':>9} {'over':>5} "
          f"{'MAC util':>8} {'sim s':>7} {'cycles/s':>9}")
    for name, rows, ideal, measured, secs in results:
        print(f"  {name:22} {rows:>5} {ideal:>9,} {measured:>9,} {measured - ideal:>5} "
              f"{ideal / measured:>8.2%} {secs:>7.2f} {measured / secs:>9,.0f}")
    ideal = sum(r[2] for r in results)
    measured = sum(r[3] for r in results)
    print(f"  {'total':22} {'':>5} {ideal:>9,} {measured:>9,} {measured - ideal:>5} "
          f"{ideal / measured:>8.2%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="a `vitfpga run` output directory")
    ap.add_argument("--sims", default="verilator,icarus")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=4)
    args = ap.parse_args()
    print(f"machine: {machine_info()}\n")

    layers, rows, label = _digits(args.run)
    digits = plan_model(layers, rows, get_board("pynq-z2"))
    digit_rows = {name: r * args.images for name, r in rows.items()}
    tiny_layers, tiny_rows, tiny_label = preset_layers("deit-tiny", 3)
    tiny = plan_model(tiny_layers, tiny_rows, get_board("kv260"))
    for sim in args.sims.split(","):
        if (reason := simulator_status(sim)) is not None:
            print(f"{sim}: skipped ({reason})")
            continue
        print(f"{label} on pynq-z2: PE={digits.pe} x SIMD={digits.simd}, "
              f"{args.images} images per layer run")
        _print(_session(digits, layers, sim, list(layers), digit_rows, args.repeats))
        print(f"\n{tiny_label} on kv260: PE={tiny.pe} x SIMD={tiny.simd}, "
              f"{len(tiny.layers)} layers in the program, one full layer simulated")
        _print(_session(tiny, tiny_layers, sim, ["blocks.11.mlp.fc1"], tiny_rows, 1))
        print()
    print("over = measured - ideal cycles (start, pipeline fill and done: fixed per run); "
          "MAC util = ideal/measured;\nsim s = wall time of one run (median), cycles/s = "
          "simulated clock cycles per wall-clock second.")


if __name__ == "__main__":
    main()
