"""`vitfpga compress` and `vitfpga export`: a budget search end to end, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, run_cli
from vitfpga.cli import main

# The search trains each candidate max(1, qat_epochs // 3) epochs either way; one epoch for
# the winner too is enough for what these tests check (fits, says why, plans, exports).
TINY = "[train]\nfloat_epochs = 4\n[compress]\nqat_epochs = 1\n"


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory: pytest.TempPathFactory, tiny_config: Path) -> Path:
    out = tmp_path_factory.mktemp("compress") / "run"
    proc = run_cli("compress", "--config", str(tiny_config), "--budget-kb", "16", "--out",
                   str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_budget_search_fits_and_says_why(budget_run: Path) -> None:
    report = json.loads((budget_run / "report.json").read_text())
    assert report["size"]["compressed_bytes"] <= 16 * 1024
    search = report["search"]
    assert "validation top-1" in search["chosen"]
    scored = [c for c in search["candidates"] if c["val_accuracy"] is not None]
    assert len(scored) >= 2 and all(c["fits"] for c in scored)
    assert any(not c["fits"] for c in search["candidates"])  # int8 is over 16 KB
    for rel in ("config.toml", "float.pt", "qat.pt", "structure.json", "model.npz", "report.md"):
        assert (budget_run / rel).is_file(), rel
    assert "## Search" in (budget_run / "report.md").read_text()


def test_a_compressed_run_plans_and_exports(budget_run: Path, tmp_path: Path) -> None:
    proc = run_cli("plan", str(budget_run), "--board", "pynq-z2")
    assert proc.returncode == 0, proc.stderr
    onnx = tmp_path / "model.onnx"
    proc = run_cli("export", str(budget_run), "--qonnx", str(onnx))
    assert proc.returncode == 0, proc.stderr
    from qonnx.core.modelwrapper import ModelWrapper

    ops = {node.op_type for node in ModelWrapper(str(onnx)).graph.node}
    assert "Quant" in ops


def test_corrupt_checkpoint_is_one_line(budget_run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(budget_run, broken)
    (broken / "qat.pt").write_bytes(b"not a checkpoint")
    proc = run_cli("export", str(broken), "--qonnx", str(tmp_path / "m.onnx"))
    assert_one_line_error(proc, 2, "qat.pt: corrupt or mismatched checkpoint")
    assert not (tmp_path / "m.onnx").exists()


def test_an_impossible_budget_names_the_smallest(tiny_config: Path, tmp_path: Path) -> None:
    proc = run_cli("compress", "--config", str(tiny_config), "--budget-kb", "2", "--out",
                   str(tmp_path / "o"))
    assert_one_line_error(proc, 2, "no configuration fits a budget of 2 KB: the smallest (")
    assert "KB" in proc.stderr and not (tmp_path / "o").exists()


def test_an_impossible_budget_is_refused_before_training(
        tiny_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """1 KB is under the host parameters and per-channel tables alone: refused from the shapes,
    before the teacher trains and before --out exists."""
    import vitfpga.model_steps
    import vitfpga.quant.compress

    trained: list[object] = []

    def no_training(*args: object, **kwargs: object) -> None:
        trained.append(kwargs.get("epochs"))
        raise AssertionError("trained")

    monkeypatch.setattr(vitfpga.model_steps, "train", no_training)
    monkeypatch.setattr(vitfpga.quant.compress, "train", no_training)
    out = tmp_path / "o"
    code = main(["compress", "--config", str(tiny_config), "--budget-kb", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert trained == [] and code == 2, err
    assert len(err) == 1 and "no configuration fits a budget of 1 KB: the smallest (" in err[0]
    assert "KB over)" in err[0]
    assert not out.exists() and not list(tmp_path.rglob("float.pt"))


@pytest.mark.parametrize(("args", "message"), [
    (("--budget-kb", "10", "--board", "pynq-z2"), "give --budget-kb or --board, not both"),
    (("--budget-kb", "-3"), "--budget-kb must be positive"),
    (("--board", "de10-nano"), "unknown board 'de10-nano'"),
])
def test_bad_compress_options(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    proc = run_cli("compress", *args, "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, 2, message)
    assert not (tmp_path / "o").exists()


def test_export_needs_a_run_directory(tmp_path: Path) -> None:
    proc = run_cli("export", str(tmp_path), "--qonnx", str(tmp_path / "m.onnx"))
    assert_one_line_error(proc, 2, "is not a vitfpga run directory")
