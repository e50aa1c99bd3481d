"""`vitfpga run --quick`: the whole path, real parts, into a fresh directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from vitfpga.hls.plan.engine import engine_latency


def test_report_schema_and_bit_exact_verification(quick_run: Path) -> None:
    report = json.loads((quick_run / "report.json").read_text())
    assert set(report) >= {"accuracy", "size_bytes", "compression_ratio", "plan",
                           "verification", "hil", "machine"}
    acc = report["accuracy"]
    assert 0.5 < acc["float"] <= 1 and 0.5 < acc["qat"] <= 1 and 0.5 < acc["integer"] <= 1
    # per-layer rows; the whole-model row is checked in test_whole_model.py
    rows = [v for v in report["verification"] if v["layer"] != "whole-model"]
    assert {v["target"] for v in rows} == {"csim", "verilator", "icarus"}
    layers = {v["layer"] for v in rows}
    assert len(layers) == 14 and {"patch_embed", "head", "blocks.2.mlp.fc2"} <= layers
    # the engine's fixed pipeline latency beyond rows*NF*SF
    latency = engine_latency(report["plan"]["simd"])
    for v in rows:
        assert v["compared"] > 0 and v["mismatches"] == 0, v
        if v["target"] != "csim":
            assert v["ideal_cycles"] <= v["cycles"] <= v["ideal_cycles"] + latency
    plan = report["plan"]
    assert plan["board"] == "pynq-z2" and len(plan["layers"]) == 14
    assert plan["mac_utilisation"] >= 0.95
    assert report["size_bytes"]["fp32"] > report["size_bytes"]["compressed"] > 0
    # int4 everywhere: plain dense streams; on chip what the codec counts plus the padding of
    # the head's 10 outputs to whole PE folds
    assert {s["codec"] for s in plan["layers"]} == {"dense"}
    size = report["size"]
    assert size["onchip_weight_bits"] == plan["onchip_weight_bits"]
    assert size["counted_weight_bits"] < size["onchip_weight_bits"] \
        <= 1.10 * size["counted_weight_bits"]
    assert sum(s["stored_bits"] for s in plan["layers"]) == plan["onchip_weight_bits"]


def test_yosys_agrees_with_the_planner(quick_run: Path) -> None:
    """Design targets: Yosys BRAM and DSP within 10% of the planner's estimates."""
    res = json.loads((quick_run / "report.json").read_text())["resources"]
    plan, yosys = res["planner"], res["yosys"]
    assert yosys["family"] == "xc7" and yosys["bram36"] > 0 and yosys["lut"] > 0
    for key in ("bram36", "dsp"):
        assert abs(yosys[key] - plan[key]) <= 0.1 * plan[key], (key, plan, yosys)


def test_hardware_in_the_loop_matches_the_golden(quick_run: Path) -> None:
    report = json.loads((quick_run / "report.json").read_text())
    hil = report["hil"]
    assert hil["images"] >= 32 and hil["logits_identical"] is True
    assert hil["engine_runs"] >= 14  # every layer at least once
    assert hil["ideal_cycles"] <= hil["cycles"]
    assert 0.5 < report["accuracy"]["rtl"] <= 1


def test_artifacts_written(quick_run: Path) -> None:
    for rel in ("config.toml", "float.pt", "qat.pt", "model.npz", "plan.json", "report.md",
                "report.png", "project/plan.json", "project/hls/run_hls.tcl",
                "project/rtl/weights.mem", "project/rtl/program.mem"):
        assert (quick_run / rel).is_file(), rel
    assert "bit-exact" in (quick_run / "report.md").read_text()
    assert not list(quick_run.parent.glob(".run.*"))  # no temporary directory left behind


def _linear_by_hand(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, mult: np.ndarray,
                    shift: np.ndarray, relu: bool) -> np.ndarray:
    """The integer contract written out again, independently of vitfpga's golden: an int64
    dot product per output, then round-half-up by the shift and clamp to int8 (ReLU: at 0)."""
    acc = (x.astype(np.int64)[:, None, :] * weight.astype(np.int64)[None, :, :]).sum(-1)
    acc = acc + bias.astype(np.int64)
    assert np.abs(acc).max() < 2**31  # the engine's accumulator is int32
    # |acc| < 2^31 and M < 2^31: acc*M + 2^(S-1) stays inside int64; >> floors, as on the RTL.
    y = (acc * mult.astype(np.int64) + (1 << (shift.astype(np.int64) - 1))) >> shift
    return np.clip(y, 0 if relu else -128, 127)


def test_integer_golden_matches_saved_vectors(quick_run: Path) -> None:
    """The vectors the RTL and C simulations were checked against are the integer contract."""
    from vitfpga.runtime import load_model

    layers = load_model(str(quick_run / "model.npz")).layers
    vectors = np.load(quick_run / "vectors.npz")
    for name, layer in layers.items():
        x = vectors[f"{name}/x"]
        assert len(x) >= 1 and x.min() >= -128 and x.max() <= 127  # --quick: one image
        want = _linear_by_hand(x, np.asarray(layer.weight), np.asarray(layer.bias),
                               np.asarray(layer.multiplier), np.asarray(layer.shift), layer.relu)
        assert (want == vectors[f"{name}/expected"]).all(), name


def test_plan_of_the_run_covers_every_layer(quick_run: Path, tmp_path: Path) -> None:
    from vitfpga.hls.plan.engine import ModelPlan

    out = tmp_path / "plan.json"
    proc = subprocess.run([sys.executable, "-m", "vitfpga.cli", "plan", str(quick_run),
                           "--board", "pynq-z2", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    plan = ModelPlan.from_json(out.read_text())
    assert len(plan.layers) == 14 and plan.layers[-1].name == "head"
    assert "blocks.2.mlp.fc2" in proc.stdout and "vit-digits" in proc.stdout
    assert out.read_text() == (quick_run / "plan.json").read_text()


def test_generate_is_deterministic(quick_run: Path, tmp_path: Path) -> None:
    """Twice the same bytes; the second time from a copy holding only the run's inputs
    (config.toml and model.npz): report.json is an output, never read back."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("config.toml", "model.npz"):
        shutil.copy(quick_run / name, inputs / name)
    trees = []
    for name, run in (("a", quick_run), ("b", inputs)):
        out = tmp_path / name
        proc = subprocess.run([sys.executable, "-m", "vitfpga.cli", "generate", str(run),
                               "--board", "pynq-z2", "--out", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        trees.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*"))
                      if p.is_file()})
    assert trees[0] == trees[1] and len(trees[0]) > 10
    # The run's own project came from the same plan and layers: the same bytes.
    run_tree = {p.relative_to(quick_run / "project"): p.read_bytes()
                for p in sorted((quick_run / "project").rglob("*")) if p.is_file()}
    assert run_tree == trees[0]
