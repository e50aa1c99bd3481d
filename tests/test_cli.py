"""Bad input: one line, exit 2, no traceback, nothing written.

The parametrised tables run `main` in process (`run_main`): a fresh interpreter costs seconds
of imports per case. The cases that run the real entry point (`run_cli`: unknown board and
option, non-empty --out, interrupt, ...) keep checking that nothing else reaches stderr."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vitfpga.cli import main

VITFPGA = [sys.executable, "-m", "vitfpga.cli"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VITFPGA, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def run_main(*args: str) -> subprocess.CompletedProcess[str]:
    """`main(args)` in this process, its output captured, as `run_cli` reports it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and text in lines[0], lines[0]


def test_boards_table() -> None:
    proc = run_cli("boards")
    assert proc.returncode == 0
    for name in ("pynq-z2", "xc7z020clg400-1", "kv260", "zcu104", "1,728"):
        assert name in proc.stdout


def test_unknown_board(tmp_path: Path) -> None:
    proc = run_cli("run", "--board", "de10-nano", "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, 2, "known boards: pynq-z1, pynq-z2, ultra96-v2")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("seeed = 1\n", "unknown key 'seeed'; the tables are [train], [data], [compress], "
                    "[hardware], [verify]"),
    ("weight_bits = 4\n", "key 'weight_bits' now lives in the [compress] table"),
    ("[train]\nseeed = 1\n", "unknown key 'seeed' in [train]; its keys: model, model_args, "
                              "weights, device, seed, float_epochs, float_lr"),
    ("[train]\nweight_bits = 4\n", "unknown key 'weight_bits' in [train]; its keys: model, "
                                    "model_args, weights, device, seed, float_epochs, "
                                    "float_lr; it lives in the [compress]"),
    ("train = 3\n", "'train' must be a table ([train] with keys model, model_args"),
    ('[train]\nmodel = "resnet50"\n', "unknown model 'resnet50'; known: vit-digits, or "
                                        "timm:NAME"),
    ('[train]\nmodel_args = "{img_size: 3"\n', "model_args is not valid JSON"),
    ('[data]\ntest_fraction = 1.5\n', "test_fraction must be between 0 and 1"),
    ('[data]\nmean = [0.5]\n', "mean and std must have the same number of channels"),
    ('[train]\nseed = "one"\n', "[train] key 'seed' must be int"),
    ("[compress]\nweight_bits = 5\n", "weight bit-width 5 is not supported"),
    ('[compress]\nlayer_bits = ["head=6"]\n', "weight bit-width 6 is not supported"),
    ('[compress]\nlayer_bits = ["head"]\n', "layer_bits entry 'head' must look like 'head=8'"),
    ('[compress]\nprune = "nm"\nprune_nm = "4:4"\n', "prune_nm needs 1 <= N < M, got 4:4"),
    ('[compress]\nprune_nm = "2-4"\n', "prune_nm must look like '2:4', got '2-4'"),
    ('[compress]\nprune = "random"\n',
     "prune must be one of none, magnitude, nm, heads, neurons"),
    ("[compress]\nprune_sparsity = 1.0\n", "prune_sparsity must be in [0, 1)"),
    ('[compress]\nlowrank = "aware"\nshared_rank = 8\n', "pick one"),
    ('[compress]\nshared_type_ranks = ["mlp=4"]\n',
     "shared_type_ranks entry 'mlp=4' must look like"),
    ("[train]\nseed = 1\nmodel = \n", "syntax error: Invalid value (at line 3"),
    ('[verify]\nsimulators = ["modelsim"]\n', "simulators must be"),
    ('[verify]\nhil_simulator = "csim"\n', "hil_simulator must be one of verilator, icarus"),
    ("[verify]\nverify_layer = 'head'\n", "unknown key 'verify_layer' in [verify]"),
    ('[hardware]\nboard = "de10-nano"\n', "unknown board 'de10-nano'"),
])
def test_bad_config(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    proc = run_main("run", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, 2, message)
    assert not (tmp_path / "o").exists()


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_non_empty_out_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = run_cli("run", "--quick", "--out", str(out))
    assert_one_line_error(proc, 2, "pass --force")
    assert (out / "keep.txt").read_text() == "mine"


def test_unknown_option_is_one_line() -> None:
    assert_one_line_error(run_cli("run", "--bogus"), 2, "No such option")


def test_interrupt_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "o"
    # A parent started in the background (nohup, `cmd &`) passes SIGINT down as ignored, and
    # Python keeps an ignored SIGINT ignored: give the child the default a terminal would.
    proc = subprocess.Popen([*VITFPGA, "run", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "120"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not any(tmp_path.glob(".o.*.partial")):
        time.sleep(0.2)
    assert any(tmp_path.glob(".o.*.partial")), "the run never started writing"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert list(tmp_path.iterdir()) == []


def test_plan_preset_prints_the_plan() -> None:
    proc = run_cli("plan", "--preset", "deit-tiny", "--board", "kv260", "--weight-bits", "3")
    assert proc.returncode == 0, proc.stderr
    for text in ("seeded random int3 weights", "blocks.11.mlp.fc2", "197",
                 "weight memory efficiency", "in URAM, loaded at start-up", "images/s at 250 MHz"):
        assert text in proc.stdout, text


def test_deit_tiny_int4_two_four_sparse_plans_onto_kv260_all_on_chip(tmp_path: Path) -> None:
    """Issue target: DeiT-Tiny dimensions at int4 with 2:4 sparsity fit KV260 with every weight
    on chip (ROM and URAM), while the same weights dense do not."""
    out = tmp_path / "plan.json"
    proc = run_cli("plan", "--preset", "deit-tiny", "--board", "kv260", "--weight-bits", "4",
                   "--codec", "nm:2:4", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "shaped for and stored as nm:2:4" in proc.stdout
    plan = json.loads(out.read_text())
    assert plan["nm"] == [2, 4] and {s["codec"] for s in plan["layers"]} == {"nm:2:4"}
    assert plan["uram"] <= 64 and plan["bram36"] <= 0.9 * 144
    # every word of every layer's stream is in the ROM or the URAM part: nothing streams in
    assert plan["weight_depth"] == sum(s["words"] for s in plan["layers"])
    assert plan["weight_depth"] - plan["rom_depth"] <= plan["uram"] * 4096
    dense = run_cli("plan", "--preset", "deit-tiny", "--board", "kv260", "--weight-bits", "4")
    assert_one_line_error(dense, 2, "kv260 offers 129.6 BRAM36")


def test_preset_codecs_are_checked() -> None:
    for args, message in ((("--codec", "bitmap"), "bitmap weights have no hardware decoder"),
                          (("--codec", "nm:3:4"), "no hardware decoder"),
                          (("--codec", "ternary", "--weight-bits", "4"), "ternary packs int2")):
        proc = run_cli("plan", "--preset", "deit-tiny", "--board", "kv260", *args)
        assert_one_line_error(proc, 2, message)


def test_low_rank_preset_plans_two_entries_per_block_layer() -> None:
    proc = run_cli("plan", "--preset", "deit-small", "--board", "zcu104", "--weight-bits", "2",
                   "--rank", "0.5")
    assert proc.returncode == 0, proc.stderr
    for text in ("blocks.0.attn.qkv.u", "blocks.0.attn.qkv.v", "low-rank at 0.5"):
        assert text in proc.stdout, text


def test_plan_that_does_not_fit_says_by_how_much() -> None:
    proc = run_cli("plan", "--preset", "deit-small", "--board", "pynq-z2")
    assert_one_line_error(proc, 2, "pynq-z2 offers 126 BRAM36")


@pytest.mark.parametrize(("args", "message"), [
    (("plan", "--board", "pynq-z2"), "give one of: a RUN_DIR"),
    (("plan", "--preset", "deit-huge", "--board", "kv260"), "unknown preset 'deit-huge'"),
    (("plan", "--preset", "deit-tiny", "--board", "kv260", "--weight-bits", "5"),
     "--weight-bits 5 is not supported"),
    (("plan", "--preset", "deit-tiny", "--board", "kv260", "--rank", "1.5"),
     "--rank must be a fraction"),
    (("generate", "--preset", "deit-tiny", "--board", "pynq-z2", "--out", "/nonexistent/x"),
     "the engine needs"),
    (("plan", "--preset", "deit-tiny", "--board", "kv260", "--lut-budget", "0.8"),
     "--lut-budget goes with --whole"),
    (("plan", "--preset", "deit-tiny", "--board", "kv260", "--whole", "--lut-budget", "1.5"),
     "--lut-budget 1.5: a share of the board's LUTs"),
])
def test_plan_bad_arguments(args: tuple[str, ...], message: str) -> None:
    assert_one_line_error(run_main(*args), 2, message)


def test_plan_refuses_corrupt_run_dir(tmp_path: Path) -> None:
    proc = run_cli("plan", str(tmp_path), "--board", "pynq-z2")
    assert_one_line_error(proc, 2, "is not a vitfpga run directory")
    (tmp_path / "model.npz").write_bytes(b"not a zip file")
    (tmp_path / "config.toml").write_text('[train]\nmodel = "vit-digits"\n')
    proc = run_cli("plan", str(tmp_path), "--board", "pynq-z2")
    assert_one_line_error(proc, 2, f"{tmp_path / 'model.npz'}: not an integer model file")


def test_generate_names_the_file_layer_and_value_of_a_bad_weight(tmp_path: Path) -> None:
    """A weight outside its layer's narrow range is refused when model.npz is read, not deep
    inside the weight packer (which used to fail with an internal error, exit 3)."""
    import dataclasses

    from tests.conftest import small_int_model

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text('[train]\nmodel = "vit-digits"\nseed = 0\n')
    model = small_int_model(bits=4)
    model.save(str(run / "model.npz"))
    assert run_cli("plan", str(run), "--board", "pynq-z2").returncode == 0  # valid as built
    qkv = model.layers["blocks.0.attn.qkv"]
    weight = qkv.weight.copy()
    weight[3, 5] = 127
    model.layers[qkv.name] = dataclasses.replace(qkv, weight=weight)
    model.save(str(run / "model.npz"))
    proc = run_cli("generate", str(run), "--board", "pynq-z2", "--out", str(tmp_path / "x"))
    assert_one_line_error(proc, 2, f"{run / 'model.npz'}: layer blocks.0.attn.qkv: weight 127 "
                                   f"is outside int4's narrow range [-7, 7]")
    assert not (tmp_path / "x").exists()


USER_BOARD = """[boards.my-zu2]
part = "xczu2cg-sbva484-1-e"
lut = 47232
ff = 94464
bram36 = 150
uram = 0
dsp = 240
clock_mhz = 200
"""


def test_user_boards_from_toml(tmp_path: Path) -> None:
    f = tmp_path / "boards.toml"
    f.write_text(USER_BOARD)
    proc = run_cli("boards", "--boards-file", str(f))
    assert proc.returncode == 0 and "my-zu2" in proc.stdout and "xczu2cg-sbva484-1-e" in proc.stdout
    proc = run_cli("plan", "--preset", "deit-tiny", "--board", "my-zu2", "--boards-file", str(f),
                   "--weight-bits", "2")
    # DeiT-Tiny does not fit a ZU2 even at 2 bits: the refusal proves the user board was used.
    assert_one_line_error(proc, 2, "my-zu2 offers 135 BRAM36 (90% of 150)")


@pytest.mark.parametrize(("text", "message"), [
    (USER_BOARD.replace("dsp = 240", "dsps = 240"), "unknown keys ['dsps'], missing keys ['dsp']"),
    (USER_BOARD.replace("lut = 47232", 'lut = "many"'), "'lut' must be int"),
    (USER_BOARD.replace("bram36 = 150", "bram36 = -1"), "'bram36' must be positive"),
    (USER_BOARD.replace('"xczu2cg-sbva484-1-e"', '"xczu2cg; exec rm"'), "may hold only"),
    ("[boards.x\n", "syntax error"),
    ("lut = 3\n", "expected [boards.NAME] tables"),
])
def test_bad_boards_file(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "boards.toml"
    f.write_text(text)
    assert_one_line_error(run_main("boards", "--boards-file", str(f)), 2, message)


def test_generate_deit_tiny_for_kv260_splits_weights_into_uram(tmp_path: Path) -> None:
    """Design-scale: all 50 DeiT-Tiny layers (seeded random int3) on one KV260 engine; what
    block RAM cannot hold goes to URAM, loaded at start-up from weights_ram.mem."""
    from vitfpga.hls.plan.engine import ModelPlan

    out = tmp_path / "deit"
    proc = run_cli("generate", "--preset", "deit-tiny", "--board", "kv260", "--weight-bits", "3",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    plan = ModelPlan.from_json((out / "plan.json").read_text())
    assert len(plan.layers) == 50 and plan.uram > 0 and plan.ram_depth > 0
    assert plan.bram36 <= 0.9 * 144 and plan.bram_efficiency >= 0.8
    ram_words = (out / "rtl" / "weights_ram.mem").read_text().split()
    rom_words = (out / "rtl" / "weights.mem").read_text().split()
    assert (len(rom_words), len(ram_words)) == (plan.rom_depth, plan.ram_depth)
    assert (out / "hls" / "vitfpga_engine.cpp").is_file()
