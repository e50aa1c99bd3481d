"""`vitfpga run --quick`: the whole path, real parts, into a fresh directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("e2e") / "run"
    proc = subprocess.run([sys.executable, "-m", "vitfpga.cli", "run", "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_report_schema_and_bit_exact_verification(quick_run: Path) -> None:
    report = json.loads((quick_run / "report.json").read_text())
    assert set(report) >= {"accuracy", "size_bytes", "compression_ratio", "plan",
                           "verification", "machine"}
    acc = report["accuracy"]
    assert 0.5 < acc["float"] <= 1 and 0.5 < acc["qat"] <= 1 and 0.5 < acc["integer"] <= 1
    assert acc["rtl"] is None
    targets = {v["target"]: v for v in report["verification"]}
    assert set(targets) == {"csim", "verilator", "icarus"}
    for v in targets.values():
        assert v["layer"] == "blocks.0.mlp.fc1"
        assert v["compared"] >= 64 * 64 and v["mismatches"] == 0
    for sim in ("verilator", "icarus"):
        assert targets[sim]["cycles"] >= targets[sim]["ideal_cycles"] > 0
    plan = report["plan"]
    assert plan["board"] == "pynq-z2" and plan["pe"] * plan["simd"] > 0
    assert report["size_bytes"]["fp32"] > report["size_bytes"]["compressed"] > 0


def test_artifacts_written(quick_run: Path) -> None:
    for rel in ("float.pt", "qat.pt", "int_model.npz", "plan.json", "report.md", "report.png",
                "project/hls/run_hls.tcl", "project/rtl/weights.mem"):
        assert (quick_run / rel).is_file(), rel
    assert "bit-exact" in (quick_run / "report.md").read_text()
    assert not list(quick_run.parent.glob(".run.*"))  # no temporary directory left behind


def test_integer_golden_matches_saved_vectors(quick_run: Path) -> None:
    import numpy as np

    from vitfpga.quant.export import load_int_model
    from vitfpga.quant.golden import linear_int

    layers = load_int_model(str(quick_run / "int_model.npz"))
    vectors = np.load(quick_run / "vectors.npz")
    assert len(vectors["x"]) >= 64
    got = linear_int(vectors["x"], layers["blocks.0.mlp.fc1"]).numpy()
    assert (got == vectors["expected"]).all()


def test_plan_of_the_run_covers_every_layer(quick_run: Path, tmp_path: Path) -> None:
    from vitfpga.hls.program import ModelPlan

    out = tmp_path / "plan.json"
    proc = subprocess.run([sys.executable, "-m", "vitfpga.cli", "plan", str(quick_run),
                           "--board", "pynq-z2", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    plan = ModelPlan.from_json(out.read_text())
    assert len(plan.layers) == 14 and plan.layers[-1].name == "head"
    assert "blocks.2.mlp.fc2" in proc.stdout and "vit-digits" in proc.stdout
