"""The generated PYNQ driver package, unmodified, on the simulated board: `pip install` it, give
it `vitfpga.sim.overlay.SimPynq` in place of the `pynq` module, and classify test images with
every linear layer on the Verilator simulation of the emitted RTL. The logits must be the
integer golden's, exactly."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from vitfpga.hls.emit.project import write_project
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, fixed_plan
from vitfpga.runtime import load_model
from vitfpga.runtime import logits as int_logits
from vitfpga.sim.overlay import SimPynq
from vitfpga.sources import run_driver_source, run_layers

IMAGES = 16
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


def _generate(run: Path, out: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "vitfpga.cli", "generate", str(run), "--board",
                           "pynq-z2", "--out", str(out)], capture_output=True, text=True,
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


def test_driver_loads_the_uram_weights_before_the_first_inference(quick_run: Path,
                                                                   tmp_path: Path,
                                                                   driver_module) -> None:
    """A plan whose trailing weight words sit in the start-up-loaded RAM: the simulated RAM
    powers up as zeros, so identical logits prove the driver streamed the words in."""
    layers, rows, _ = run_layers(quick_run)
    auto = ModelPlan.from_json((quick_run / "plan.json").read_text())
    board = get_board("pynq-z2")
    plan = fixed_plan(layers, rows, board, auto.pe, auto.simd,
                      rom_depth=auto.weight_depth // 2)
    assert 0 < plan.ram_depth < plan.weight_depth
    project = tmp_path / "split"
    write_project(plan, layers, project, board=board, source=run_driver_source(quick_run))
    pkg = driver_module(_install(project, tmp_path / "site"), "vitfpga_vit_digits")
    hw = (Path(pkg.__file__).parent / "hw.json").read_text()
    assert f'"ram_words": {plan.ram_depth}' in hw

    data = np.load(project / "pynq" / "test_images.npz")
    x = data["images"][:IMAGES]
    with SimPynq(project, sim=SIM, build_dir=tmp_path / "build") as sim:
        acc = pkg.Accelerator(backend=sim)
        assert acc.runs == 1  # the weight load, before any inference
        logits = acc.logits(x)
    np.testing.assert_array_equal(logits, _golden(quick_run, x))


def test_whole_model_driver_classifies_on_the_simulated_board(quick_run: Path, tmp_path: Path,
                                                             driver_module) -> None:
    """The whole-model project of the run (what `vitfpga generate --whole` writes): one start
    per batch, patches in, logits out, nothing run on the host but the image quantisation."""
    # a copy: pip builds inside the source tree, and the run's project must stay as generated
    project = Path(shutil.copytree(quick_run / "whole_model", tmp_path / "whole"))
    pkg = driver_module(_install(project, tmp_path / "site"), "vitfpga_vit_digits_whole")
    data = np.load(project / "pynq" / "test_images.npz")
    x = data["images"][:IMAGES]
    with SimPynq(project, sim=SIM, build_dir=tmp_path / "build") as board:
        acc = pkg.Accelerator(backend=board, batch=IMAGES // 2)
        labels, logits = acc.predict(x)
        runs, cycles = acc.runs, acc.cycles
        with pytest.raises(pkg.EngineError, match="whole-model design"):
            acc.run_layer("head", np.zeros((1, 32), dtype=np.int64))
    golden = _golden(quick_run, x)
    np.testing.assert_array_equal(logits, golden)
    np.testing.assert_array_equal(labels, golden.argmax(1))
    report = json.loads((quick_run / "report.json").read_text())
    # two batches, two starts; the cycles register counts what the whole-model row measured
    assert runs == 2
    assert cycles == pytest.approx(IMAGES * report["whole_model"]["cycles_per_image"], rel=0.01)
