"""Yosys synth_xilinx on the emitted Verilog engine: resource counts against the planner.

One small two-layer engine is synthesised once for the module (about 15-20 s on two cores once
YoWASP has compiled Yosys; the very first run on a machine adds that compilation). Its weight
memory is large enough for block RAM, its per-channel tables small enough for LUTs, so both
sides of the ROM model in `hls.memory` are exercised against what Yosys actually builds.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import hand_model_plan, random_layer
from vitfpga.errors import BadInput, VerificationFailed
from vitfpga.hls.emit.rtl import decoder_params, emit_rtl
from vitfpga.hls.emit.templating import write_mem
from vitfpga.hls.plan.boards import Board, get_board, part_family
from vitfpga.hls.plan.engine import ModelPlan, fixed_plan
from vitfpga.hls.plan.layout import CHANNEL_PAD, model_tables
from vitfpga.hls.plan.memory import map_memory
from vitfpga.hls.plan.whole import PACK_SHIFT, engine_resources, pack_shift
from vitfpga.ir import IntLinear
from vitfpga.sim.synth import SynthReport, synthesize

PE, SIMD, BITS = 2, 8, 4
SHAPES = [(128, 64), (64, 32)]  # (K, N): 640 weight words of 64 bits, 48 channel words
TOLERANCE = 0.10  # the planner target: Yosys BRAM and DSP within 10%
REQUANT_DSP_PER_PE = 4  # the 32x31-bit acc*M product


@dataclass(frozen=True)
class Synthesised:
    plan: ModelPlan
    rtl: Path
    report: SynthReport
    plan_layers: dict[str, IntLinear]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Synthesised:
    layers = {f"blocks.{i}.fc": random_layer(k, n, bits=BITS, seed=i, name=f"blocks.{i}.fc")
              for i, (k, n) in enumerate(SHAPES)}
    plan = hand_model_plan(layers, PE, SIMD)
    out = tmp_path_factory.mktemp("synth_engine")
    emit_rtl(plan, layers, out)
    report = synthesize(out / "rtl", out / "build", family=part_family(plan.part))
    return Synthesised(plan, out / "rtl", report, layers)


def _uses_lutmul(rtl: Path) -> bool:
    """Whether the engine instantiates the LUT multiplier (rather than `w * x`)."""
    instance = re.compile(r"^\s*vitfpga_lutmul\s*#", re.MULTILINE)
    return any(instance.search(v.read_text()) for v in rtl.glob("*.v")
               if v.name != "vitfpga_lutmul.v")


@pytest.mark.yosys
def test_engine_counts_are_plausible(engine: Synthesised) -> None:
    r = engine.report
    assert r.family == "xc7" and r.top == "vitfpga_engine"
    # Everything was mapped to Xilinx primitives: a leftover $-cell is unmapped logic.
    assert r.cells and not [c for c in r.cells if c.startswith("$")]
    assert r.ff > 0 and r.lut > 0 and r.uram == 0
    assert 0 < r.lutram < r.lut  # the two-bank input buffer is distributed RAM
    assert 0.5 * engine.plan.lut <= r.lut <= 2 * engine.plan.lut
    saved = json.loads((engine.rtl.parent / "build" / "synth_report.json").read_text())
    assert saved == json.loads(r.to_json()) and saved["cells"] == r.cells
    assert (engine.rtl.parent / "build" / "yosys.log").stat().st_size > 0


@pytest.mark.yosys
def test_block_ram_matches_the_planner(engine: Synthesised) -> None:
    plan, r = engine.plan, engine.report
    assert plan.bram36 > 0
    assert abs(r.bram36 - plan.bram36) <= TOLERANCE * plan.bram36, (r.bram36, plan.bram36)
    # The ROM model predicts every memory of the engine exactly: weights in block RAM, the
    # per-channel tables (48 words) in LUTs.
    weights = map_memory(plan.word_bits, plan.weight_depth, rom=True)
    tables = [map_memory(PE * bits, plan.channel_depth, rom=True)
              for bits, _ in CHANNEL_PAD.values()]
    assert not weights.logic and all(t.logic for t in tables)
    assert r.bram36 == weights.bram36 + sum(t.bram36 for t in tables)


@pytest.mark.yosys
def test_dsp_matches_the_planner(engine: Synthesised) -> None:
    plan, r = engine.plan, engine.report
    assert plan.dsp == REQUANT_DSP_PER_PE * PE  # low-bit weights multiply in LUTs
    expected = plan.dsp
    if not _uses_lutmul(engine.rtl):
        # `w * x` under (* use_dsp = "no" *): Vivado keeps it in LUTs, Yosys puts every lane
        # on a DSP48 regardless. Wiring in vitfpga_lutmul removes the difference.
        expected += PE * SIMD
    assert abs(r.dsp - expected) <= TOLERANCE * expected, (r.dsp, expected)


@pytest.mark.yosys
def test_synthesis_failure_names_the_error(tmp_path: Path) -> None:
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "broken.v").write_text(
        "module broken(input a, output b);\n  no_such_module u_x (.a(a), .b(b));\nendmodule\n")
    with pytest.raises(VerificationFailed, match=r"(?s)broken failed.*ERROR.*no_such_module"):
        synthesize(rtl, tmp_path / "build", top="broken")
    assert (tmp_path / "build" / "yosys.log").is_file()


def test_nothing_to_synthesise(tmp_path: Path) -> None:
    with pytest.raises(VerificationFailed, match="no Verilog"):
        synthesize(tmp_path, tmp_path / "build")
    with pytest.raises(BadInput, match="family"):
        synthesize(tmp_path, tmp_path / "build", family="xc9500")


@pytest.mark.parametrize(("part", "family"), [
    ("xc7z020clg400-1", "xc7"), ("xc7a35tcpg236-1", "xc7"), ("xczu3eg-sbva484-1-i", "xcup"),
    ("xck26-sfvc784-2LV-c", "xcup"), ("xczu7ev-ffvc1156-2-e", "xcup"), ("xcvu9p-flga2104", "xcup"),
])
def test_family_for_part(part: str, family: str) -> None:
    assert part_family(part) == family


def test_family_for_unknown_part() -> None:
    assert part_family("5cseba6u23i7") == ""
    board = Board("altera", "5cseba6u23i7", 1, 1, 1, 0, 1, 100.0)
    with pytest.raises(BadInput, match="no Yosys family"):
        board.synth_family  # noqa: B018


def test_report_counts_like_vivado() -> None:
    cells = {"RAMB36E1": 2, "RAMB18E1": 1, "URAM288": 1, "DSP48E1": 4, "LUT6": 10, "LUT2": 3,
             "INV": 1, "RAM64M": 3, "RAM32X1D": 1, "SRLC32E": 2, "FDRE": 5, "FDSE": 1,
             "CARRY4": 7, "MUXF7": 2, "IBUF": 9}
    r = SynthReport.from_cells(cells, family="xc7", top="t", seconds=1.234)
    assert (r.bram36, r.uram, r.dsp, r.ff) == (2.5, 1, 4, 6)
    assert r.lutram == 3 * 4 + 2  # RAM64M is four LUTs, RAM32X1D two
    assert r.lut == 10 + 3 + 1 + r.lutram + 2  # logic, distributed RAM and shift registers
    assert r.bram18 == 5 and r.seconds == 1.23 and r.cells == dict(sorted(cells.items()))


@pytest.mark.yosys
# DSP48E1 without row groups, DSP48E2 with three (its PE rows pack as without)
@pytest.mark.parametrize(("board", "groups"), [("pynq-z2", 1), ("kv260", 3)])
def test_packed_engine_dsp_matches_the_planner(board: str, groups: int, engine: Synthesised,
                                               tmp_path: Path) -> None:
    """The whole-model engine (int8 lanes for the streamed operand) on each DSP48 family: one
    DSP per PE pair and input lane (mul2x8 at the family's shift) plus the requantisation's,
    exactly as `engine_resources` counts them (unpacked, one DSP a lane); with row groups the
    rows beyond PE packed alike and the requantisation still PE lanes."""
    plan = fixed_plan(engine.plan_layers, dict.fromkeys(engine.plan_layers, 4), get_board(board),
                      PE, SIMD, groups=groups)
    family = part_family(plan.part)
    shift = pack_shift(plan)
    assert shift == PACK_SHIFT[family]
    rtl = tmp_path / "rtl"
    shutil.copytree(engine.rtl, rtl)
    # the weight ROM of PE x groups rows (the emitted one is the PE-row engine's)
    write_mem(rtl / "weights.mem", model_tables(plan, engine.plan_layers).weights, plan.word_bits)
    params = {"PE": PE, "SIMD": SIMD, "WBITS": plan.weight_bits,
              **decoder_params(plan), "NLAYERS": len(plan.layers), "ROM_DEPTH": plan.rom_depth,
              "CDEPTH": plan.channel_depth, "OPDEPTH": 16, "PG": groups}
    r = synthesize(rtl, tmp_path / "build", top="vitfpga_mvu", family=family,
                   params={**params, "PACK": shift})
    assert engine_resources(plan)[0] == r.dsp == (REQUANT_DSP_PER_PE * PE
                                                   + PE * groups * SIMD // 2)
