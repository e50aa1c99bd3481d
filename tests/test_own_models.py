"""A user's own ViT and images through the CLI and the Python API, on tiny models: unsupported
architectures, bad data and mismatched weights are refused in one line before training with
nothing written; a matching checkpoint is used as it is; a torchvision ViT is imported exactly
and its integer model agrees with it; `vitfpga.compile` writes a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.e2e.test_own_vit import write_digit_folder

REPO = Path(__file__).resolve().parents[1]
TIMM = "timm:vit_tiny_patch16_224"
TINY = {"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 1, "num_heads": 2}
TV = {"image_size": 16, "patch_size": 4, "num_layers": 1, "num_heads": 2, "hidden_dim": 32,
      "mlp_dim": 64}

# Few epochs on purpose: these tests check what is refused, written and reported, not accuracy.
BRIEF = """
[train]
float_epochs = 2
float_lr = 2e-3

[compress]
weight_bits = 8
qat_epochs = 1
"""


def make_not_a_vit(num_classes: int = 10) -> nn.Module:
    """A `package.module:factory` returning a module that is no Vision Transformer."""
    return nn.Sequential(nn.Flatten(), nn.Linear(256, num_classes))


def vitfpga(*args: str) -> subprocess.CompletedProcess[str]:
    # One torch thread: these models are tiny, and two threads spin against each other on the
    # shared 2-core machines. The repository root as cwd makes `tests.test_own_models` importable.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vitfpga.cli", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


def vitfpga_here(capsys: pytest.CaptureFixture[str], *args: str
                 ) -> subprocess.CompletedProcess[str]:
    """`vitfpga ARGS` in this process (the CLI's own `main`, its exit code and output): the
    refusals need no fresh interpreter, and a subprocess spends seconds importing torch and timm
    each time. test_weights_of_another_shape_... runs a real process, traceback check included."""
    from vitfpga.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def words(text: str) -> str:
    """Rich wraps long lines at the console width: compare text with its spaces normalised."""
    return " ".join(text.split())


def assert_refused(proc: subprocess.CompletedProcess[str], runs: Path, *texts: str) -> str:
    """Exit 2, one line on stderr holding every text, no traceback, training never started and
    nothing written (`runs` is the parent of --out, created only when a run starts writing)."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for text in texts:
        assert text in lines[0], lines[0]
    assert "train_float" not in proc.stdout, proc.stdout
    assert not runs.exists()
    return lines[0]


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's digits as an .npz: x (N, 8, 8) uint8, y (N,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=np.round(digits.images * 255 / 16).astype(np.uint8), y=digits.target)
    return path


@pytest.fixture(scope="module")
def brief_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "brief.toml"
    path.write_text(BRIEF)
    return path


# -- refusals, before training ------------------------------------------------------------------

@pytest.mark.parametrize(("model", "args", "texts"), [
    ("timm:deit_tiny_distilled_patch16_224", TINY,
     ["cannot import <model>: distilled DeiT", "non-distilled"]),
    (TIMM, {**TINY, "qk_norm": True},
     [f"{TIMM}: cannot import blocks.0.attn.q_norm: qk-norm"]),
    ("timm:convnext_atto", {}, ["cannot import <model>: timm ConvNeXt is not a VisionTransformer"]),
    ("timm:swin_tiny_patch4_window7_224",
     {"img_size": 16, "patch_size": 4, "embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2],
      "window_size": 2},
     ["cannot import <model>: timm SwinTransformer is not a VisionTransformer"]),
    ("torchvision:VisionTransformer", {**TV, "representation_size": 8},
     ["cannot import heads.pre_logits:"]),
    ("tests.test_own_models:make_not_a_vit", {},
     ["cannot import <model>: Sequential is not a Vision Transformer"]),
])
def test_unsupported_architectures_are_refused_before_training(
        tmp_path: Path, digits_npz: Path, brief_config: Path, model: str,
        args: dict[str, object], texts: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    proc = vitfpga_here(capsys, "compress", "--config", str(brief_config), "--model", model,
                        "--model-args", json.dumps(args), "--data", str(digits_npz),
                        "--max-images", "300", "--out", str(runs / "out"))
    line = assert_refused(proc, runs, *texts)
    assert line.startswith(f"vitfpga: {model}: cannot import "), line


def _folder(root: Path, classes: dict[str, int]) -> Path:
    """An image folder of `classes` (name: count) holding small random grayscale PNGs."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / name / f"{i}.png")
    return root


def _bad_data(tmp_path: Path, case: str) -> tuple[Path, list[str]]:
    """A bad --data source and the texts its refusal must hold."""
    if case == "empty folder":
        path = tmp_path / "empty"
        path.mkdir()
        return path, [f"--data {path}: is empty"]
    if case == "one class":
        path = _folder(tmp_path / "one", {"cat": 4})
        return path, [f"--data {path}: only one class folder ('cat')"]
    if case == "corrupt png":
        path = _folder(tmp_path / "corrupt", {"a": 3, "b": 3})
        bad = path / "b" / "broken.png"
        bad.write_bytes(np.random.default_rng(1).bytes(300))
        return path, [f"{bad}: not a readable image"]
    labels = np.arange(40) % 4
    labels[7] = 9  # classes 0..3 and a 9: labels 4..8 have no image
    path = tmp_path / "labels.npz"
    np.savez(path, x=np.zeros((40, 8, 8), np.uint8), y=labels)
    return path, [f"{path}: no image has label 4 though labels go up to 9"]


@pytest.mark.parametrize("case", ["empty folder", "one class", "corrupt png", "label gap"])
def test_bad_data_is_refused_before_training(tmp_path: Path, brief_config: Path,
                                            case: str, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    data, texts = _bad_data(tmp_path, case)
    runs = tmp_path / "runs"
    proc = vitfpga_here(capsys, "compress", "--config", str(brief_config), "--model", TIMM,
                        "--model-args", json.dumps(TINY), "--data", str(data), "--out",
                        str(runs / "out"))
    assert_refused(proc, runs, *texts)


def test_more_classes_than_the_model_has_is_refused(tmp_path: Path, digits_npz: Path,
                                                   brief_config: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    proc = vitfpga_here(capsys, "compress", "--config", str(brief_config), "--model", TIMM,
                        "--model-args", json.dumps({**TINY, "num_classes": 5}), "--data",
                        str(digits_npz), "--out", str(runs / "out"))
    assert_refused(proc, runs, "the model has 5 classes but the data has 10")


# -- weights ------------------------------------------------------------------------------------

def _timm_module(seed: int, **overrides: object) -> nn.Module:
    """timm's tiny ViT for the digits (10 classes, 1 channel) with every parameter drawn at
    random, so that a run which ignored the file (a fresh seeded model) could not match it."""
    from vitfpga.quant.importers.tvcompat import import_timm

    timm = import_timm()
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10,
                              in_chans=1, **{**TINY, **overrides})
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model.eval()


def _save(module: nn.Module, path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    else:
        torch.save(module.state_dict(), path)
    return path


def test_weights_of_another_shape_are_refused_naming_file_and_key(
        tmp_path: Path, digits_npz: Path, brief_config: Path) -> None:
    path = _save(_timm_module(3, embed_dim=16), tmp_path / "other.pt")
    runs = tmp_path / "runs"
    proc = vitfpga("compress", "--config", str(brief_config), "--model", TIMM, "--model-args",
                   json.dumps(TINY), "--weights", str(path), "--data", str(digits_npz),
                   "--out", str(runs / "out"))
    assert_refused(proc, runs, f"weights {path}: cls_token has shape (1, 1, 16), the model's "
                               "(1, 1, 32)")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_matching_checkpoint_is_the_teacher_untrained(tmp_path: Path, digits_npz: Path,
                                                       brief_config: Path, suffix: str) -> None:
    from vitfpga.quant.frontend import frontend_for
    from vitfpga.quant.model import ViT

    mine = _timm_module(3)
    path = _save(mine, tmp_path / f"mine{suffix}")
    out = tmp_path / "run"
    proc = vitfpga("compress", "--quick", "--config", str(brief_config), "--model", TIMM,
                   "--model-args", json.dumps(TINY), "--weights", str(path), "--data",
                   str(digits_npz), "--max-images", "300", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"float weights from {path}: no training" in words(proc.stdout)
    report = json.loads((out / "report.json").read_text())
    imported = report["import"]
    assert imported["ok"] is True and imported["images"] > 0, imported
    assert imported["max_abs_diff"] <= 1e-4 * imported["logit_range"], imported
    assert 0.0 <= report["agreement_with_pytorch"] <= 1.0
    assert report["config"]["train"]["weights"] == str(path)
    # The run's float teacher (float.pt, vitfpga's ViT) computes what the test's module does.
    cfg = frontend_for(TIMM, TINY, num_classes=10, in_chans=1).config
    teacher = ViT(cfg)
    teacher.load_state_dict(torch.load(out / "float.pt", weights_only=True))
    images = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref, got = mine(images), teacher.eval()(images)
    assert float((ref - got).abs().max()) <= 1e-4 * float(ref.max() - ref.min())


# -- a torchvision ViT, end to end -----------------------------------------------------------

def test_torchvision_vit_imports_exactly_and_its_integer_model_agrees(
        tmp_path: Path, digits_npz: Path) -> None:
    # All 1,797 digits for 20 epochs: a model confident enough that top-1 agreement measures
    # quantisation rather than coin flips between near-tied classes.
    config = tmp_path / "tv.toml"
    config.write_text("[train]\nfloat_epochs = 20\nfloat_lr = 3e-3\n\n"
                      "[compress]\nweight_bits = 8\nqat_epochs = 2\n")
    out = tmp_path / "run"
    proc = vitfpga("compress", "--quick", "--config", str(config), "--model",
                   "torchvision:VisionTransformer", "--model-args", json.dumps(TV), "--data",
                   str(digits_npz), "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    imported = report["import"]
    assert imported["ok"] is True and imported["logit_range"] > 0, imported
    assert imported["max_abs_diff"] <= 1e-4 * imported["logit_range"], imported
    assert report["data"] == {"source": str(digits_npz), "train_images": 1437,
                              "test_images": 360, "classes": 10}
    assert report["accuracy"]["float"] > 0.5, report["accuracy"]
    # A float-vs-integer tolerance: the int8 model (after QAT and integer-only export) and the
    # user's float PyTorch module may disagree on a few near-tied images, not on many.
    assert report["agreement_with_pytorch"] >= 0.9, report["agreement_with_pytorch"]
    saved = (out / "config.toml").read_text()
    assert 'model = "torchvision:VisionTransformer"' in saved
    assert "mean = [0.449]" in saved  # ImageNet's mean of the three channels, for one channel


# -- the Python API -----------------------------------------------------------------------------

def test_compile_writes_a_compressed_run(tmp_path: Path, brief_config: Path) -> None:
    import vitfpga

    data = write_digit_folder(tmp_path / "digits")
    out = tmp_path / "api"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI tests' subprocesses: a tiny model, a shared machine
    try:
        # The recipe overrides the config file's [compress] (weight_bits 8 there).
        result = vitfpga.compile(TIMM, data, model_args=TINY,
                                 recipe={"weight_bits": 4, "qat_epochs": 1}, max_images=300,
                                 hardware=False, quick=True, out=out, config=brief_config)
    finally:
        torch.set_num_threads(threads)
    assert result.out == out and result.plan is None and result.project is None
    acc = result.report["accuracy"]
    assert all(0.0 <= acc[k] <= 1.0 for k in ("float", "qat", "integer")) and acc["rtl"] is None
    assert result.report["import"]["ok"] is True
    assert result.report["data"]["classes"] == 10
    assert result.report["data"]["train_images"] + result.report["data"]["test_images"] == 300
    saved = (out / "config.toml").read_text()
    assert f'model = "{TIMM}"' in saved and '\\"embed_dim\\": 32' in saved
    assert "weight_bits = 4" in saved and "float_epochs = 2" in saved


def test_compile_refuses_an_unknown_recipe_key(tmp_path: Path) -> None:
    import vitfpga
    from vitfpga.errors import BadInput

    with pytest.raises(BadInput, match="unknown recipe key 'weight_bitz'"):
        vitfpga.compile(TIMM, None, model_args=TINY, recipe={"weight_bitz": 8},
                        hardware=False, quick=True, out=tmp_path / "api")
    assert not (tmp_path / "api").exists()


def test_plan_and_generate_take_a_users_model(tmp_path: Path, digits_npz: Path) -> None:
    """`plan --model` and `generate --model`: imported, post-training quantised, calibrated on
    --data, planned, and the project written."""
    args = ("--model", TIMM, "--model-args", json.dumps(TINY), "--data", str(digits_npz),
            "--board", "pynq-z2", "--weight-bits", "4")
    proc = vitfpga("plan", *args)
    assert proc.returncode == 0, proc.stderr
    text = words(proc.stdout)
    assert f"{TIMM} (random init; import check" in text
    assert "calibrated on 8 images of" in text and "blocks.0.mlp.fc2" in proc.stdout
    out = tmp_path / "project"
    proc = vitfpga("generate", *args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "rtl" / "weights.mem").is_file() and (out / "plan.json").is_file()
    proc = vitfpga("plan", *args[:4], "--board", "pynq-z2", "--preset", "deit-tiny")
    assert proc.returncode == 2 and "give one of" in proc.stderr
