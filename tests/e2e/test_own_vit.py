"""A user's own ViT and images, end to end: a timm VisionTransformer trained briefly on digits
the test writes as an image folder, through `vitfpga run --quick` to hardware in the loop,
bit-exact; and timm's DeiT-Tiny (random init) imported, planned for KV260, generated, and one
block's layers bit-exact on Verilator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vitfpga.ir import IntModel

# The example model at 16x16 (17 tokens): the same layers as at 32x32 (benchmarks/
# own_vit.py measures that one, with the int8 agreement target), a quarter of the work.
TIMM_ARGS = {"img_size": 16, "patch_size": 4, "embed_dim": 64, "depth": 2, "num_heads": 4}

# Brief on purpose: the float teacher trains 30 quick epochs (about 96% top-1), QAT two, and
# a few images go through each simulator (verify every layer on csim and Verilator, then
# hardware in the loop; the whole-model RTL runs the same units as in test_whole_model.py).
CONFIG = f"""
[train]
model = "timm:vit_tiny_patch16_224"
model_args = {json.dumps(json.dumps(TIMM_ARGS))}
float_epochs = 30
float_lr = 3e-3

[compress]
weight_bits = 8
qat_epochs = 2

[hardware]
synth = false
whole_synth = false

[verify]
verify_images = 2
simulators = ["csim", "verilator"]
hil_images = 4
whole_images = 0
"""


def write_digit_folder(root: Path) -> Path:
    """scikit-learn's digits as 8x8 grayscale PNGs in class sub-folders (ImageFolder)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.round(image * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def timm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("own")
    data = write_digit_folder(base / "digits")
    (base / "run.toml").write_text(CONFIG)
    out = base / "run"
    proc = subprocess.run([sys.executable, "-m", "vitfpga.cli", "run", "--quick", "--config",
                           str(base / "run.toml"), "--data", str(data), "--out", str(out)],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.verilator
def test_timm_vit_on_an_image_folder_is_bit_exact_in_the_loop(timm_run: Path) -> None:
    report = json.loads((timm_run / "report.json").read_text())
    imported = report["import"]
    assert imported["max_abs_diff"] <= 1e-4 * imported["logit_range"], imported
    assert report["data"]["classes"] == 10 and report["data"]["test_images"] > 100
    acc = report["accuracy"]
    assert acc["float"] > 0.8 and acc["integer"] > 0.8, acc
    # Float-vs-integer tolerances (top-1 agreement; measured 98% for both with this brief
    # training; the 99% int8 target is benchmarks/own_vit.py's, with full training).
    assert report["agreement_with_pytorch"] >= 0.9, report["agreement_with_pytorch"]
    assert report["agreement_qat_float"] >= 0.9, report["agreement_qat_float"]
    rows = [v for v in report["verification"] if v["layer"] != "whole-model"]
    assert {v["target"] for v in rows} == {"csim", "verilator"}
    assert len({v["layer"] for v in rows}) == 10  # patch embedding, 2 x 4 block layers, head
    assert all(v["compared"] > 0 and v["mismatches"] == 0 for v in rows), rows
    assert report["hil"]["logits_identical"] is True and report["hil"]["images"] == 4
    config = (timm_run / "config.toml").read_text()
    assert "mean = [0.5]" in config  # timm's own normalisation, resolved and saved


@pytest.mark.verilator
def test_deit_tiny_import_plan_and_generate(tmp_path: Path) -> None:
    """timm's DeiT-Tiny at 224x224 (random init): imported (the import check runs inside
    `user_int_model` and stops it on failure), post-training quantised at int2, planned for
    KV260 and its project generated, in process (the CLI's own functions; `plan --model` runs
    through the CLI in tests/test_own_models.py); then the first block's four layers bit-exact
    on Verilator."""
    from vitfpga.config import load_config
    from vitfpga.hardware_steps import generate, plan
    from vitfpga.hls.plan.boards import get_board
    from vitfpga.sources import model_driver_source, user_int_model

    cfg = load_config(None, model="timm:deit_tiny_patch16_224")
    model, label = user_int_model(cfg, 2)  # int2: what fits KV260 with every weight on chip
    assert model.spec.tokens == 197 and model.spec.dim == 192 and model.spec.depth == 12
    assert "random init" in label and "import check" in label
    board = get_board("kv260")
    engine = plan(model.layers, model.rows(), board)
    assert len(engine.layers) == 50 and engine.uram > 0  # 12 x 4 block layers, patch, head
    files = generate(engine, model.layers, tmp_path / "deit", board,
                     model_driver_source(cfg.train.model, model))
    assert (tmp_path / "deit" / "rtl" / "weights_ram.mem").is_file() and len(files) > 100
    _block_bit_exact_on_verilator(model, tmp_path)


def _block_bit_exact_on_verilator(model: IntModel, tmp_path: Path) -> None:
    """Block 0's qkv, proj, fc1 and fc2 on one engine (PE 8 x SIMD 16), each on 16 rows of its
    real int8 activations from one image, against the golden."""
    from vitfpga.hls.emit.rtl import emit_rtl
    from vitfpga.hls.plan.boards import get_board
    from vitfpga.hls.plan.engine import fixed_plan
    from vitfpga.runtime import logits
    from vitfpga.runtime.model import linear_golden
    from vitfpga.sim.rtl import run_rtl

    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 3, 224, 224)).astype(np.float32)
    record: dict[str, list[np.ndarray]] = {}
    logits(model, image, record=record)
    names = [f"blocks.0.{p}" for p in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")]
    layers = {n: model.layers[n] for n in names}
    plan = fixed_plan(layers, {n: 16 for n in names}, get_board("kv260"), pe=8, simd=16)
    emit_rtl(plan, layers, tmp_path / "block")
    jobs = [(n, record[n][0][:16].astype(np.int64),
             linear_golden(record[n][0][:16].astype(np.int64), layers[n])) for n in names]
    results = run_rtl(tmp_path / "block" / "rtl", plan, jobs, "verilator", tmp_path / "build")
    assert [r.layer for r in results] == names
    for r in results:
        assert r.compared == 16 * layers[r.layer].n and r.mismatches == 0, r
