"""Measured vs ideal engine cycles, and simulation speed, on seeded random layers.

Prints a table and the machine; asserts nothing about time. Layers are seeded random integer
layers (labelled so), not a trained model: the point is the engine's cycle behaviour per shape.

    .venv/bin/python benchmarks/engine_cycles.py [--sims verilator,icarus] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import hand_plan
from vitfpga.hls.emit_rtl import emit_rtl
from vitfpga.quant.golden import linear_int
from vitfpga.quant.synthetic import random_layer, random_rows
from vitfpga.report import machine_info
from vitfpga.sim.rtl import run_rtl, simulator_status

# (K, N, PE, SIMD, weight bits, rows): the digits fc1 fold, and wider DeiT-like slices.
SHAPES = [(32, 64, 2, 32, 4, 68), (32, 64, 4, 8, 4, 68), (192, 192, 8, 16, 4, 17),
          (192, 768, 16, 16, 3, 8)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", default="verilator,icarus")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {machine_info()}")
    print("layers: seeded random integer weights (not a trained model)\n")
    print(f"{'sim':9} {'K':>4} {'N':>4} {'PE':>3} {'SIMD':>4} {'bits':>4} {'rows':>4} "
          f"{'ideal':>7} {'measured':>8} {'over':>5} {'MAC util':>8} {'sim s (median)':>14} "
          f"{'cycles/s':>9}")
    for sim in args.sims.split(","):
        if (reason := simulator_status(sim)) is not None:
            print(f"{sim}: skipped ({reason})")
            continue
        for k, n, pe, simd, bits, rows in SHAPES:
            layer = random_layer(k, n, bits=bits, seed=k + n)
            plan = hand_plan(layer, pe, simd, rows)
            x = random_rows(rows, k)
            expected = linear_int(x, layer).numpy()
            with tempfile.TemporaryDirectory() as tmp:
                emit_rtl(plan, layer, Path(tmp))
                run_rtl(Path(tmp) / "rtl", plan, x, expected, sim, Path(tmp) / "b")  # build
                times, result = [], None
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    result = run_rtl(Path(tmp) / "rtl", plan, x, expected, sim, Path(tmp) / "b")
                    times.append(time.perf_counter() - start)
            assert result is not None and result.ok, result
            med = statistics.median(times)
            print(f"{sim:9} {k:>4} {n:>4} {pe:>3} {simd:>4} {bits:>4} {rows:>4} "
                  f"{result.ideal_cycles:>7} {result.cycles:>8} "
                  f"{result.cycles - result.ideal_cycles:>5} "
                  f"{result.ideal_cycles / result.cycles:>8.1%} {med:>14.2f} "
                  f"{2 * result.cycles / med:>9.0f}")
    print("\n'over' = measured - ideal cycles (fixed pipeline latency); MAC util = ideal/measured;"
          "\nsim s includes cocotb start-up and two runs of the rows (the bench runs them twice).")


if __name__ == "__main__":
    main()
