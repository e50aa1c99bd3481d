"""Wall-clock figures that tests used to assert (a test must not fail because a machine is busy):

- the integer model's forward pass over the 360 digits test images on one core (was "< 5 s" in
  tests/quant/test_intvit.py), from a `vitfpga run` directory's integer model;
- how long the simulated board (vitfpga.sim.overlay) takes to give up on a DMA receive that
  never completes: 300 clock cycles of the simulator (was "< 10 s" in tests/sim/test_overlay.py).

Prints the figures and the machine; asserts nothing about time. Times are medians of --repeats.

    .venv/bin/python benchmarks/wall_clock.py --run runs/demo [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from vitfpga import runtime
from vitfpga.hls.emit.rtl import emit_rtl
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import fixed_plan
from vitfpga.hls.plan.system import CELL_NAMES, system_spec
from vitfpga.quant.data import load_digits_split
from vitfpga.quant.synthetic import random_layer
from vitfpga.report import machine_info
from vitfpga.sim.tools import simulator_status
from vitfpga.sources import run_int_model


def _median(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def int_model_seconds(run: Path, repeats: int) -> tuple[int, float]:
    torch.set_num_threads(1)
    model = run_int_model(run)[0]
    images = load_digits_split().x_test.numpy()
    return len(images), _median(lambda: runtime.logits(model, images), repeats)


def dma_timeout_seconds() -> float:
    """Seconds for a receive the engine never feeds to time out (300 simulated cycles). One
    measurement: the channel stays busy after a timeout, as on a board."""
    from vitfpga.sim.overlay import DmaTimeout, SimPynq

    layers = {n: random_layer(16, 8, seed=i, name=n) for i, n in enumerate(("a", "b"))}
    board = get_board("pynq-z2")
    plan = fixed_plan(layers, dict.fromkeys(layers, 4), board, 2, 4)
    with tempfile.TemporaryDirectory(prefix="vitfpga-bench-") as tmp:
        project = Path(tmp) / "project"
        emit_rtl(plan, layers, project)
        (project / "system.json").write_text(system_spec(plan, board, "bench").to_json())
        with SimPynq(project, "verilator", Path(tmp) / "build") as pynq:
            dma = getattr(pynq.Overlay("design.bit"), CELL_NAMES["dma"])
            dma.recvchannel.transfer(pynq.allocate(shape=(4 * 2,), dtype=np.uint8))
            start = time.perf_counter()
            try:
                dma.recvchannel.wait()
            except DmaTimeout:
                return time.perf_counter() - start
    raise RuntimeError("the receive completed although the engine never ran")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a `vitfpga run` directory")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {machine_info()}\n")
    n, seconds = int_model_seconds(args.run, args.repeats)
    print(f"integer model, {n} test images, one core: {seconds:.2f} s "
          f"({n / seconds:,.0f} images/s)")
    if (reason := simulator_status("verilator")) is not None:
        print(f"simulated board DMA timeout: skipped ({reason})")
        return
    print(f"simulated board, DMA receive timing out after 300 cycles on verilator: "
          f"{dma_timeout_seconds():.2f} s")


if __name__ == "__main__":
    main()
