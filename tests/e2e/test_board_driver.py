"""The generated PYNQ driver package, unmodified, on simulated boards, classifying test images
with the Verilator simulation of the emitted RTL; the logits must be the integer golden's,
exactly:
- under the real pynq 4.0 client (PYNQ.remote, its own environment) against `vitfpga board-sim`:
  the engine with its start-up weight load, and the whole-model design;
- `pip install`ed, with `vitfpga.sim.overlay.SimPynq` in place of the `pynq` module."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests import remote
from vitfpga.hls.emit.project import WholeModel, write_project
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, fixed_plan
from vitfpga.hls.plan.program import compile_vit
from vitfpga.hls.plan.whole import plan_whole_model
from vitfpga.runtime import load_model
from vitfpga.runtime import logits as int_logits
from vitfpga.sim.overlay import SimPynq
from vitfpga.sources import run_driver_source, run_int_model, run_layers

IMAGES = 16
# PYNQ 4.0, the release with PYNQ.remote, supports Zynq UltraScale+ boards only.
REMOTE_BOARD = "kv260"
SIM = "verilator"
pytestmark = pytest.mark.verilator


def _install(project: Path, target: Path) -> Path:
    """pip-install the project's driver package into `target`, as a board would (offline)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation",
                           "--no-deps", "--no-index", "--target", str(target),
                           str(project / "pynq")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


@pytest.fixture
def driver_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Import an installed driver package by name, from a given site dir, then forget it."""
    loaded: list[str] = []

    def load(site: Path, name: str) -> ModuleType:
        monkeypatch.syspath_prepend(str(site))
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        loaded.append(name)
        return importlib.import_module(name)

    yield load
    for name in loaded:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def _golden(run: Path, images: np.ndarray) -> np.ndarray:
    return int_logits(load_model(str(run / "model.npz")), images)


def _generate(run: Path, out: Path, board: str = "pynq-z2", *extra: str) -> Path:
    proc = subprocess.run([sys.executable, "-m", "vitfpga.cli", "generate", str(run), "--board",
                           board, "--out", str(out), *extra], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def test_driver_package_classifies_on_the_simulated_board(quick_run: Path, tmp_path: Path,
                                                          driver_module) -> None:
    project = _generate(quick_run, tmp_path / "project")
    pkg = driver_module(_install(project, tmp_path / "site"), "vitfpga_vit_digits")
    # The installed package is the generated one, byte for byte (pip copied, nothing rewrote).
    src = project / "pynq" / "vitfpga_vit_digits"
    assert Path(pkg.__file__).parent != src
    for name in ("driver.py", "hw.json", "model.npz", "runtime/forward.py"):
        assert (Path(pkg.__file__).parent / name).read_bytes() == (src / name).read_bytes()

    data = np.load(project / "pynq" / "test_images.npz")
    x, y = data["images"][:IMAGES], data["labels"][:IMAGES]
    with SimPynq(project, sim=SIM, build_dir=tmp_path / "build") as board:
        acc = pkg.Accelerator(backend=board)
        labels, logits = acc.predict(x)
        runs, cycles = acc.runs, acc.cycles
    golden = _golden(quick_run, x)
    assert logits.shape == (IMAGES, 10) and logits.size > 0
    np.testing.assert_array_equal(logits, golden)
    np.testing.assert_array_equal(labels, golden.argmax(1))
    assert (labels == y).mean() > 0.5
    # Every layer ran on the engine (no weight load here: the plan keeps all weights in ROM).
    assert runs >= len(acc.layers) == 14 and cycles > 0


def _remote_predict(project: Path, tmp_path: Path, batch: int) -> tuple[dict, np.ndarray]:
    """The project's driver package, as generated, classifies IMAGES test images under the real
    pynq 4.0 client (its own environment) on a board-sim board of the project."""
    design = json.loads((project / "system.json").read_text())["design"]
    images = tmp_path / "images.npz"
    data = np.load(project / "pynq" / "test_images.npz")
    np.savez(images, images=data["images"][:IMAGES])
    with remote.board(project, tmp_path / "board") as server:
        info = remote.run_client("predict.py", project / "pynq", design, server.bit, images,
                                 tmp_path / "out.npz", batch, host=server.host)
        assert server.board.programmed == design  # the download reached the board
    info["x"] = data["images"][:IMAGES]
    return info, np.load(tmp_path / "out.npz")["logits"]


def _check_real_client(info: dict) -> None:
    """The run went through the real pynq package, in remote mode, with pynq's DMA driver."""
    assert info["pynq"] == "4.0.0" and ".venv-pynq" in info["pynq_file"]
    assert info["device"] == "RemoteDevice"
    assert info["dma_driver"] == "pynq.lib.dma.DMA" and info["engine_driver"] == "DefaultIP"
    assert info["leds"] == 0x1  # the driver lit "ready" on the design's AXI GPIO


def test_driver_loads_the_uram_weights_under_the_real_pynq_client(quick_run: Path,
                                                                    tmp_path: Path) -> None:
    """A plan whose trailing weight words sit in the start-up-loaded RAM: the simulated RAM
    powers up as zeros, so identical logits prove the driver streamed the words in, here
    through pynq's own DMA driver programming the simulated AXI DMA's registers."""
    layers, rows, _ = run_layers(quick_run)
    auto = ModelPlan.from_json((quick_run / "plan.json").read_text())
    board = get_board(REMOTE_BOARD)
    plan = fixed_plan(layers, rows, board, auto.pe, auto.simd,
                      rom_depth=auto.weight_depth // 2)
    assert 0 < plan.ram_depth < plan.weight_depth
    project = tmp_path / "split"
    write_project(plan, layers, project, board=board, source=run_driver_source(quick_run))
    hw = json.loads((project / "pynq" / "vitfpga_vit_digits" / "hw.json").read_text())
    assert hw["ram_words"] == plan.ram_depth

    info, logits = _remote_predict(project, tmp_path, batch=64)
    _check_real_client(info)
    np.testing.assert_array_equal(logits, _golden(quick_run, info["x"]))
    # the weight load, then every layer of the one batch on the engine
    assert info["runs"] >= 1 + len(hw["layers"]) and info["cycles"] > 0


def test_whole_model_driver_under_the_real_pynq_client(quick_run: Path, tmp_path: Path) -> None:
    """The run's whole-model design with a third of its weight words in URAM: the driver's
    start-up load through pynq's DMA driver fills them (the simulated URAM powers up as zeros),
    then patches in, logits out, one start per batch, under the real pynq client."""
    model, layers, rows, _ = run_int_model(quick_run)
    report = json.loads((quick_run / "report.json").read_text())
    fold = report["whole_model"]["plan"]
    board = get_board(REMOTE_BOARD)
    auto = fixed_plan(layers, rows, board, fold["pe"], fold["simd"])
    plan = fixed_plan(layers, rows, board, auto.pe, auto.simd,
                      rom_depth=auto.weight_depth // 3)
    assert 0 < plan.ram_depth < plan.weight_depth
    prog = compile_vit(model, plan, fold["ln_lanes"], fold["sm_lanes"])  # the run's design
    project = tmp_path / "whole"
    write_project(plan, layers, project, board=board, source=run_driver_source(quick_run),
                  whole=WholeModel(prog, plan_whole_model(plan, prog, board)))
    hw = json.loads((project / "pynq" / "vitfpga_vit_digits_whole" / "hw.json").read_text())
    assert hw["ram_words"] == plan.ram_depth and hw["top"] == "vitfpga_vit"
    info, logits = _remote_predict(project, tmp_path, batch=IMAGES // 2)
    _check_real_client(info)
    assert "whole-model design" in info["run_layer"]  # single layers are refused
    golden = _golden(quick_run, info["x"])
    np.testing.assert_array_equal(logits, golden)
    assert info["runs"] == 3  # the weight load, then two batches, two starts
    # the engine reads URAM words as fast as ROM words: the run's cycles per image, plus the load
    assert info["cycles"] > IMAGES * report["whole_model"]["cycles_per_image"]
