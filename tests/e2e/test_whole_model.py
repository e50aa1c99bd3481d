"""The whole ViT in generated RTL (docs/vit.md) on the quick run's model: the run's verification
row, the op program against the golden, other foldings of the same model, the whole-model
project `vitfpga generate --whole` writes, and what the whole-model design refuses."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vitfpga.errors import BadInput
from vitfpga.hls.emit.vit import emit_vit
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, fixed_plan
from vitfpga.hls.plan.program import compile_vit, execute, field_offsets
from vitfpga.hls.plan.system import ENGINE_TOP, WHOLE_TOP, SystemSpec
from vitfpga.quant.data import load_digits_split
from vitfpga.runtime.forward import logits
from vitfpga.runtime.model import load_model
from vitfpga.sim.tclcheck import check_vivado_project
from vitfpga.sim.vit import run_vit
from vitfpga.sources import run_int_model

from .conftest import E2E_WHOLE_LANES

CORE = Path(__file__).resolve().parents[2] / "templates" / "vit" / "include" / \
    "vitfpga_vit_core.v"


def test_whole_model_rtl_is_bit_exact_on_32_images(quick_run: Path) -> None:
    report = json.loads((quick_run / "report.json").read_text())
    rows = [v for v in report["verification"] if v["layer"] == "whole-model"]
    assert len(rows) == 1, report["verification"]
    row = rows[0]
    assert row["target"] == "verilator"
    assert row["compared"] == 32 * 10 and row["mismatches"] == 0
    whole = report["whole_model"]
    assert whole["images"] == 32 and whole["logits_identical"]
    assert report["accuracy"]["rtl"] is not None
    assert row["cycles"] == pytest.approx(whole["cycles_per_image"] * 32, abs=32)
    # the ideal is a lower bound (each op at its slowest unit), so the RTL can never beat it;
    # the digits model on its folding measures about 1.35x it (docs/vit.md, Cycles: the units'
    # latencies, paid once an op, are a third of the work at d = 32, 17 tokens)
    assert 1.0 <= whole["cycles_vs_ideal"] <= 1.40, whole
    # the run's [hardware] whole_max_lanes caps the search (tests/e2e/conftest.py)
    assert whole["plan"]["pe"] * whole["plan"]["simd"] <= E2E_WHOLE_LANES
    assert whole["cycles_per_image"] >= whole["ideal_cycles_per_image"], whole
    assert whole["ps_pl_bytes_per_image"] < whole["host_offload"]["ps_pl_bytes_per_image"]
    assert (quick_run / "whole_model" / "rtl" / "vitfpga_vit.v").is_file()
    # for people: the comparison with the host-offload design, and its plot
    md = (quick_run / "report.md").read_text()
    assert "## Whole model in RTL" in md and "bytes across PS-PL" in md
    gops = 2 * whole["plan"]["macs_per_image"] * whole["images_per_s"] / 1e9
    assert f"({gops:,.2f} GOPS)" in md and "HG-PIPE" in md  # beside the published anchors
    assert f"{whole['ps_pl_reduction']:g}x less" in md
    assert (quick_run / "whole_model.png").stat().st_size > 0


def test_op_program_matches_the_golden(quick_run: Path) -> None:
    model = load_model(str(quick_run / "model.npz"))
    plan = ModelPlan.from_json((quick_run / "plan.json").read_text())
    prog = compile_vit(model, plan)
    images = load_digits_split().x_test[:24].numpy()
    assert np.array_equal(execute(prog, model, plan, images), logits(model, images))


def test_verilog_reads_the_op_fields_python_writes() -> None:
    text = CORE.read_text()
    found = {m[0].lower(): int(m[1]) for m in
             re.findall(r"localparam integer F_(\w+) = (\d+);", text)}
    assert found == {name: lsb for name, (lsb, _) in field_offsets().items()}


def test_models_with_hops_are_refused(quick_run: Path) -> None:
    model = load_model(str(quick_run / "model.npz"))
    plan = ModelPlan.from_json((quick_run / "plan.json").read_text())
    model.params["hop.blocks.0.mlp.fc2.v"] = np.array([1 << 30, 30])
    with pytest.raises(BadInput, match="hop"):
        compile_vit(model, plan)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vitfpga.cli", *args], capture_output=True,
                          text=True, timeout=600)


def _tree(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.tclsh
def test_generate_whole_writes_the_runs_whole_model_project(quick_run: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "whole"
    proc = _cli("generate", str(quick_run), "--board", "pynq-z2", "--whole", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    tree = _tree(out)
    # what `vitfpga run` verified is what a user generates, byte for byte
    assert tree == _tree(quick_run / "whole_model")
    assert not any(p.parts[0] == "hls" for p in tree)  # no HLS C++ of the whole model (yet)
    spec = SystemSpec(**json.loads((out / "system.json").read_text()))
    assert spec.top == WHOLE_TOP and spec.design == "vitfpga_vit_digits_whole"
    plan = ModelPlan.from_json((out / "plan.json").read_text())
    hw = json.loads((out / "pynq" / spec.design / "hw.json").read_text())
    assert hw["top"] == WHOLE_TOP and hw["whole"]["out_beats"] >= 1
    assert check_vivado_project(out / "vivado" / "build.tcl", spec, plan, hw) == []
    checked = _cli("check", str(out))  # the same checks as a user runs them
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "all 2 checks passed" in checked.stdout, checked.stdout
    # the check can fail: the same script judged as the host-offload engine's
    wrong = check_vivado_project(out / "vivado" / "build.tcl",
                                 dataclasses.replace(spec, top=ENGINE_TOP), plan)
    assert any("references module 'vitfpga_vit', not 'vitfpga_engine'" in p for p in wrong)
    assert any("rtl/vitfpga_engine.v is not added" in p for p in wrong)
    whole = json.loads((out / "whole_model.json").read_text())
    report = json.loads((quick_run / "report.json").read_text())
    assert whole == report["whole_model"]["plan"] and whole["fits"]
    assert "make hls" not in (out / "Makefile").read_text()


def test_generate_whole_refuses_what_it_cannot_build(quick_run: Path, tmp_path: Path) -> None:
    for args, words in (
        (["--preset", "deit-tiny", "--board", "pynq-z2"], "does not fit pynq-z2"),
        ([str(quick_run), "--board", "pynq-z2", "--from-hls"], "no HLS C++ of the whole model"),
        ([str(quick_run), "--board", "pynq-z2", "--rank", "0.5"], "--rank"),
    ):
        out = tmp_path / "refused"
        proc = _cli("generate", *args, "--whole", "--out", str(out))
        assert proc.returncode == 2, (args, proc.stderr)
        assert words in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not out.exists()


@pytest.mark.verilator
def test_weights_in_uram_are_loaded_at_start_up(quick_run: Path, tmp_path: Path) -> None:
    """A plan with the trailing weight words in the start-up-loaded RAM (URAM on KV260): the
    top's weight load (mode bit 0, as the driver does it) fills it, then the images are
    bit-exact; skipping the load leaves the RAM at its power-up zeros and the logits change,
    so the RAM part is really what the engine reads. The folding is another than the run's,
    PE much wider than SIMD (SIMD wider than PE in tests/sim/test_vit_rtl.py): the RTL must be
    exact wherever the planner lands. The softmax takes a quarter of PE (the narrowest the
    search tries): the core's gearbox hands each 8-score beat on in four parts and drops the
    three padding-only parts of each row's last beat (17 tokens)."""
    model, layers, rows, _ = run_int_model(quick_run)
    full = fixed_plan(layers, rows, get_board("kv260"), 8, 2)
    plan = fixed_plan(layers, rows, get_board("kv260"), 8, 2, rom_depth=full.weight_depth // 3)
    assert 0 < plan.ram_depth < plan.weight_depth
    prog = compile_vit(model, plan, sm=2)
    files = emit_vit(plan, layers, prog, tmp_path / "rtl")
    ram = tmp_path / "rtl" / "weights_ram.mem"
    assert ram in files and len(ram.read_text().split()) == plan.ram_depth
    assert "RAM_DEPTH(" + str(plan.ram_depth) + ")" in (tmp_path / "rtl" / "vitfpga_vit.v"
                                                        ).read_text()
    images = load_digits_split().x_test[:2].numpy()
    expected = logits(model, images)
    r = run_vit(tmp_path / "rtl", prog, plan, model, images, "verilator", tmp_path / "build")
    assert r.logits.shape == expected.shape == (2, 10)
    np.testing.assert_array_equal(r.logits, expected)
    # one op at a time, each at least its slowest unit: a lower bound at every folding, and
    # above the engine's own work alone
    assert r.cycles >= 2 * prog.bound_cycles() > 2 * prog.ideal_cycles()["engine"] > 0
    skipped = run_vit(tmp_path / "rtl", prog, plan, model, images, "verilator",
                      tmp_path / "build", load=False)
    assert not np.array_equal(skipped.logits, expected)
