"""The whole-model design's plan at DeiT-Tiny dimensions (seeded random weights): activation
memories by liveness, their placement in block RAM, URAM or LUT RAM, and the folding search on
KV260."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import small_int_model
from vitfpga.errors import BadInput, DoesNotFit
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import BRAM_RESERVE, LUT_BUDGET, ModelPlan, fixed_plan
from vitfpga.hls.plan.layout import model_tables
from vitfpga.hls.plan.memory import LUTRAM_MAX_DEPTH, map_lutram, map_memory
from vitfpga.hls.plan.program import OP_BITS, compile_vit, tokens_in_pairs
from vitfpga.hls.plan.whole import (
    _WHOLE_LUT_SCALE,
    OPS_LOGIC_MAX,
    STYLE_CODES,
    STYLE_PARAMS,
    WholeModelPlan,
    _designs,
    _place,
    activation_memories,
    plan_whole_model,
    rom_blocks,
    rotator_luts,
    search_whole_model,
)
from vitfpga.quant.model import HARDWARE_PRESETS
from vitfpga.runtime.model import load_model
from vitfpga.sources import preset_int_model

KV260 = get_board("kv260")
DEIT = HARDWARE_PRESETS["deit-tiny"]


@pytest.fixture(scope="module")
def deit2() -> tuple:
    return preset_int_model("deit-tiny", 2)


def test_bm_shares_one_region_between_phases(deit2: tuple) -> None:
    model, layers, rows, _ = deit2
    prog = compile_vit(model, fixed_plan(layers, rows, KV260, 4, 16))
    t, d = DEIT.tokens, DEIT.dim
    # q/k/v, one head's probabilities (rows of 197 in 208, whole words of 16 lanes, so that
    # every BM address stays a multiple of the lanes' steps), attention out
    attention = t * (3 * d + 208 + d)
    mlp, patches = t * DEIT.hidden, DEIT.num_patches * DEIT.patch_dim
    assert attention > max(mlp, patches)
    assert prog.bm_depth == attention  # the shared region only: LayerNorms feed the engine
    assert prog.xm_depth == 2 * t * d + d  # residual, position embedding, class row


def test_memories_rotate_in_steps_of_the_programs_alignment(deit2: tuple) -> None:
    """Every XM and BM address the program issues is a multiple of `xm_align` / `bm_align`
    (vitfpga_vmem.v rotates its lanes in those steps): XM's rows are read in whole words and
    written in PE steps, BM's steps are as narrow as the softmax's beats."""
    model, layers, rows, _ = deit2
    plan = fixed_plan(layers, rows, KV260, 16, 32, groups=3)
    prog = compile_vit(model, plan, 4, 8)
    assert (prog.lanes, prog.xm_align, prog.bm_align) == (32, 16, 8)
    for op in prog.ops:
        f = op.fields
        for base, stride in ((f.get("src", 0), f.get("src_stride", 0)),
                             (f.get("dst", 0), f.get("dst_stride", 0))):
            assert base % 8 == 0 and stride % 8 == 0, op.name
    # the rotators' LUTs shrink with the steps: 2 and 4 positions instead of 32
    assert rotator_luts(prog) < rotator_luts(dataclasses.replace(prog, xm_align=1, bm_align=1))
    assert rotator_luts(dataclasses.replace(prog, xm_align=32, bm_align=32)) == 0


def test_layernorms_run_beside_the_linear_layers_they_feed(deit2: tuple) -> None:
    model, layers, rows, _ = deit2
    plan = fixed_plan(layers, rows, KV260, 4, 16)
    prog = compile_vit(model, plan, ln=4)
    lns = [op for op in prog.ops if op.kind == "ln"]
    assert [op.name for op in lns[:2]] == ["blocks.0.norm1+blocks.0.attn.qkv",
                                           "blocks.0.norm2+blocks.0.mlp.fc1"]
    assert len(lns) == 2 * DEIT.depth + 1 and lns[-1].name == "norm+head"
    qkv = plan.slot("blocks.0.attn.qkv")
    assert lns[0].ideal == {"engine": qkv.ideal_cycles(DEIT.tokens),
                            "ln": DEIT.tokens * DEIT.dim // 4}
    assert lns[0].fields["beats"] == qkv.beats == DEIT.dim // 16
    # one op, so the slower unit's time and not the sum
    assert prog.bound_cycles() == sum(max(op.ideal.values(), default=0) for op in prog.ops)
    assert "ln" not in prog.bound_by_unit()  # 4 lanes keep pace with the engine's 4 x 16
    # the packer fills SIMD-lane beats with whole LayerNorm beats: no more lanes than SIMD
    with pytest.raises(BadInput, match="expected one of"):
        compile_vit(model, fixed_plan(layers, rows, KV260, 16, 4), ln=8)


def test_save_bram_moves_uninitialised_memories_into_uram(deit2: tuple) -> None:
    model, layers, rows, _ = deit2
    plan = fixed_plan(layers, rows, KV260, 8, 8)
    prog = compile_vit(model, plan)
    dense = plan_whole_model(plan, prog, KV260)
    saving = plan_whole_model(plan, prog, KV260, "save-bram")
    assert dense.activation_uram == 0  # URAM would store these less densely
    assert saving.activation_uram > 0 and saving.activation_bram36 < dense.activation_bram36
    (xm,) = [m for m in activation_memories(plan, prog) if m.name == "xm"]
    # XM holds the position embedding from the bitstream, and URAM has no initial contents
    assert not xm.uram and "xm" not in saving.styles
    assert saving.styles.get("bm") == "ultra" and not dense.styles
    assert saving.activation_bram36 >= xm.banks * map_memory(xm.width, xm.depth).bram36
    assert map_memory(256, 2371, 64, save_bram=True).uram == 4  # 4 URAM < 18 BRAM36


def test_deit_tiny_fits_kv260_at_two_bits(deit2: tuple) -> None:
    model, layers, rows, _ = deit2
    plan, prog, whole = search_whole_model(model, layers, rows, KV260, max_lanes=64)
    assert whole.fits and plan.pe * plan.simd <= 64
    assert whole.bram36 <= KV260.bram36 * (1 - BRAM_RESERVE) and whole.uram <= KV260.uram
    # the ideal is a lower bound: one op at a time, each for its slowest unit, so Q·Kᵀ (engine
    # and softmax overlapped) counts once; the per-unit split adds up to it
    assert whole.ideal_cycles_per_image == sum(max(op.ideal.values(), default=0)
                                               for op in prog.ops)
    assert sum(whole.ideal_by_unit.values()) == whole.ideal_cycles_per_image
    assert whole.busy_by_unit == prog.ideal_cycles()
    assert whole.ideal_cycles_per_image < sum(whole.busy_by_unit.values())
    # patches in, 1000 logits out; the host-offload design moves every linear layer's rows
    assert whole.ps_pl_bytes_per_image == DEIT.num_patches * DEIT.patch_dim + 1000
    assert whole.host_offload_ps_pl_bytes_per_image > 40 * whole.ps_pl_bytes_per_image
    # DeiT-Tiny is published at 1.3 G multiply-accumulates an image (Touvron et al., 2021; ours
    # counts the linear layers and both attention products: 1.25 G); at most 64 MACs a clock
    # that needs about 20M cycles, less where the weight layers take their rows in pairs (two
    # MACs a lane), as at this pick
    assert 1.24e9 < whole.macs_per_image < 1.27e9
    assert whole.ideal_gops == pytest.approx(2 * whole.macs_per_image
                                             * whole.ideal_images_per_s / 1e9)
    assert prog.pairs and plan.groups > 1
    assert 12e6 < whole.busy_by_unit["engine"] < 16e6
    # it fits only with weights in URAM, which the whole-model top loads at start-up
    assert 0 < plan.ram_depth < plan.weight_depth


def test_deit_tiny_does_not_fit_kv260_at_three_bits_on_16_lanes() -> None:
    """The closest miss in the message. (With row groups, from 192 lanes, int3 fits: the
    576-bit words of PE 8 x 3 rows x SIMD 8 fill eight URAM columns exactly.)"""
    model, layers, rows, _ = preset_int_model("deit-tiny", 3)
    with pytest.raises(DoesNotFit, match=r"does not fit kv260: at best .* BRAM36, .* URAM"):
        search_whole_model(model, layers, rows, KV260, max_lanes=16)


def test_weights_beyond_the_board_are_refused_at_once() -> None:
    """DeiT-Tiny's 22.6 Mbit of int4 weights on a Pynq-Z2 (4.6 Mbit): refused before any
    folding is tried."""
    model, layers, rows, _ = preset_int_model("deit-tiny", 4)
    with pytest.raises(DoesNotFit, match=r"its encoded weights alone are 22\.6 Mbit, its block "
                                         r"RAM \(90%\) and URAM hold 4\.6 Mbit"):
        search_whole_model(model, layers, rows, get_board("pynq-z2"))


def test_cli_plans_and_generates_the_same_whole_model(tmp_path: Path) -> None:
    """`plan --whole` and `generate --whole` of DeiT-Tiny at int2 on KV260 show the same folding
    and cost (one search); the project holds every weight word, the ROM's in the bitstream and
    the rest in weights_ram.mem, which the driver package carries for its start-up load."""
    # 64 lanes: the folding is not what this checks, and the default's wider search is slower
    args = ["--preset", "deit-tiny", "--board", "kv260", "--whole", "--weight-bits", "2",
            "--max-lanes", "64"]
    cli = [sys.executable, "-m", "vitfpga.cli"]
    done = subprocess.run([*cli, "plan", *args, "--json", str(tmp_path / "plan.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "images/s at 250 MHz" in done.stdout and "host-offload design" in done.stdout
    out = tmp_path / "project"
    made = subprocess.run([*cli, "generate", *args, "--out", str(out)], capture_output=True,
                          text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    planned = json.loads((tmp_path / "plan.json").read_text())
    assert json.loads((out / "whole_model.json").read_text()) == planned["whole_model"]
    engine = ModelPlan.from_json((out / "plan.json").read_text())
    assert json.loads(engine.to_json()) == planned["engine"]
    assert 0 < engine.ram_depth < engine.weight_depth
    rtl = out / "rtl"
    # the RTL places each memory where the plan did (vitfpga_lane_ram.v's STYLE)
    top = (rtl / "vitfpga_vit.v").read_text()
    for name, param in STYLE_PARAMS.items():
        style = planned["whole_model"]["styles"].get(name)
        assert f".{param.upper()}({STYLE_CODES.get(style, 0)})" in top
    assert len((rtl / "weights.mem").read_text().split()) == engine.rom_depth
    assert len((rtl / "weights_ram.mem").read_text().split()) == engine.ram_depth
    pkg = out / "pynq" / "vitfpga_deit_tiny_whole"
    hw = json.loads((pkg / "hw.json").read_text())
    assert hw["ram_words"] == engine.ram_depth and hw["top"] == "vitfpga_vit"
    assert (pkg / "weights_ram.bin").stat().st_size == engine.ram_depth * hw["ram_bytes_per_word"]
    # the untrained model ships whole: the driver quantises images with its parameters
    assert load_model(str(pkg / "model.npz")).params
    bad = subprocess.run([*cli, "plan", *args, "--rank", "0.5"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and "--rank" in bad.stderr


def test_lutram_placement_moves_the_operand_buffer_out_of_block_ram(deit2: tuple) -> None:
    """The third placement puts the operand buffer, wide and shallow, in LUT RAM: block RAM
    falls by its blocks and the LUTs rise by map_lutram's count."""
    model, layers, rows, _ = deit2
    plan = fixed_plan(layers, rows, KV260, 16, 16)
    prog = compile_vit(model, plan)
    saving = plan_whole_model(plan, prog, KV260, "save-bram")
    lut = plan_whole_model(plan, prog, KV260, "lutram")
    assert saving.styles == {"bm": "ultra"}
    assert lut.styles == {"bm": "ultra", "operand": "distributed"}
    (op,) = [m for m in activation_memories(plan, prog) if m.name == "operand"]
    # in block RAM each int8 lane fills a 9-bit byte slot
    assert op.bram_width == op.width // 8 * 9
    assert lut.activation_bram36 == pytest.approx(
        saving.activation_bram36 - map_memory(op.bram_width, op.depth).bram36, abs=0.1)
    # the whole design's LUT scale applies to what the activations add
    added = lut.lut - saving.lut
    assert added == pytest.approx(_WHOLE_LUT_SCALE * map_lutram(op.width, op.depth, 8).luts, abs=2)


def test_unit_fifos_are_as_deep_as_their_rtl(deit2: tuple) -> None:
    """vitfpga_softmax_vec.v sizes its FIFOs to a row's beats plus the tree's (and for the
    exponents also the divider's) clocks, rounded up to a power of two: at DeiT-Tiny's 197 tokens
    on 8 lanes the exponent FIFO is 128 deep, which Yosys builds as 3 BRAM36, and the score FIFO
    32, LUT RAM; on 4 lanes the scores are 64 deep, still LUT RAM. The LayerNorm's row buffer
    holds d/L + 53 + log2 L beats."""
    model, layers, rows, _ = deit2
    plan = fixed_plan(layers, rows, KV260, 16, 16, groups=6)
    listed = {m.name: m for m in activation_memories(plan, compile_vit(model, plan, 8, 8))}
    assert listed["softmax.e"].depth == 128 and "softmax.scores" not in listed
    assert map_memory(listed["softmax.e"].width, 128).bram36 == 3
    assert listed["ln.rows"].depth == 192 // 8 + 53 + 3
    narrow = {m.name for m in activation_memories(plan, compile_vit(model, plan, 4, 4))}
    assert "softmax.scores" not in narrow and "softmax.e" in narrow


def test_block_ram_roms_are_counted(deit2: tuple) -> None:
    """On KV260 at 250 MHz the op ROM of a long program and the softmax's exp tables sit in
    block RAM by attribute (vitfpga_vit_core.v OPS_BLOCK, EXP_BLOCK), so the plan counts them
    there: one dual-port table per two softmax lanes. At Pynq-Z2's 100 MHz they stay in logic,
    inside the calibrated LUTs."""
    model, layers, rows, _ = deit2
    plan = fixed_plan(layers, rows, KV260, 8, 8)
    prog = compile_vit(model, plan)
    mems = {m.name: m for m in activation_memories(plan, prog)}
    assert len(prog.ops) > OPS_LOGIC_MAX and rom_blocks(plan, prog) == (True, True)
    # the bits some op sets differently from another: the ROM's columns synthesis keeps
    assert OP_BITS > mems["ops"].width > 150
    assert map_memory(mems["ops"].width, mems["ops"].depth).bram36 >= 3
    assert mems["softmax.exp"].banks == prog.sm_lanes // 2 and mems["softmax.exp"].width == 46
    z2 = dataclasses.replace(plan, part=get_board("pynq-z2").part, clock_mhz=100.0)
    assert rom_blocks(z2, prog) == (False, False)
    assert not {"ops", "softmax.exp"} & {m.name for m in activation_memories(z2, prog)}


def test_shallow_memories_are_lut_ram_as_yosys_builds_them() -> None:
    """A RAM of at most LUTRAM_MAX_DEPTH words without a style attribute is LUT RAM in Yosys
    (digits' XM and operand buffer, every design's softmax FIFOs), so the plan counts no block
    RAM for it: the units' shallow buffers are inside their calibrated LUTs and not listed,
    the others add map_lutram's LUTs, a lane's own primitives for a memory written by lanes
    (a LUT RAM primitive has one write enable)."""
    model = small_int_model()
    z2 = get_board("pynq-z2")
    plan = fixed_plan(model.layers, model.rows(), z2, 8, 16)
    prog = compile_vit(model, plan, 2, 4)
    mems = activation_memories(plan, prog)
    names = {m.name for m in mems}
    assert "xm" in names and not {"softmax.scores", "softmax.e"} & names
    shallow = [m for m in mems if m.depth <= LUTRAM_MAX_DEPTH]
    assert {m.name for m in shallow} >= {"xm", "operand"}
    whole = plan_whole_model(plan, prog, z2)
    deep = sum(map_memory(m.width, m.depth).bram36 * m.banks for m in mems
               if m.depth > LUTRAM_MAX_DEPTH)
    assert whole.activation_bram36 == pytest.approx(deep, abs=0.1) and whole.styles == {}
    # one placement rule for all: a deeper XM would be block RAM again
    xm = next(m for m in mems if m.name == "xm")
    deeper = dataclasses.replace(xm, depth=LUTRAM_MAX_DEPTH + 1)
    assert _place((deeper,), 0, "block").bram36 == map_memory(xm.width, deeper.depth).bram36 * 2
    assert xm.lane_bits == 16
    assert _place((xm,), 0, "block").luts == map_lutram(xm.width, xm.depth, 16).luts * 2
    assert map_lutram(xm.width, xm.depth, 16).luts > map_lutram(xm.width, xm.depth, xm.width).luts



def test_a_shallow_operand_buffer_splits_its_lanes_on_ultrascale() -> None:
    """On UltraScale+ a LUT RAM operand buffer takes each int8 lane's top bit as a RAM64X1D
    (vitfpga_lane_ram.v STYLE 3): 10 LUTs a lane where two RAM64M8 take 16. On 7-series, whose
    RAM64M holds 3 bits in 4 LUTs, it is left as synthesis infers it. Deeper than 64 words a
    RAM64X1D no longer holds a lane's bit."""
    model = small_int_model()
    placed = {}
    for name in ("kv260", "pynq-z2"):
        board = get_board(name)
        plan = fixed_plan(model.layers, model.rows(), board, 8, 16)
        prog = compile_vit(model, plan, 2, 4)
        placed[name] = plan_whole_model(plan, prog, board).styles.get("operand")
        (op,) = [m for m in activation_memories(plan, prog) if m.name == "operand"]
        assert op.depth <= LUTRAM_MAX_DEPTH and op.split == (name == "kv260")
    assert placed == {"kv260": "distributed-split", "pynq-z2": None}
    lanes = op.width // 8
    split = map_lutram(op.width, op.depth, 8, split=True)
    assert _place((dataclasses.replace(op, split=True),), 0, "block").luts == split.luts
    assert map_lutram(op.width, op.depth, 8).luts - split.luts == 6 * lanes
    with pytest.raises(ValueError, match="64"):
        map_lutram(op.width, LUTRAM_MAX_DEPTH + 1, 8, split=True)

def test_weight_layers_take_tokens_in_pairs_where_the_packing_is_exact(deit2: tuple) -> None:
    """vitfpga_mvu.v PAIR: on a DSP48E2 engine of row groups with 2-bit weights in [-1, 1] the
    weight layers' rows go two a weight word (the attention products one), the bound counts a
    pair's iterations once, and the bias tables carry the weights' offset."""
    model, layers, rows, _ = deit2
    plan = fixed_plan(layers, rows, KV260, 16, 32, groups=3)
    prog = compile_vit(model, plan, 4, 8)
    assert prog.pairs and tokens_in_pairs(model, plan)
    weight_ops = [op for op in prog.ops if op.kind in ("linear", "ln")
                  and op.fields["entry"] < len(plan.layers)]
    assert len(weight_ops) == 2 + 4 * DEIT.depth  # patch embed, head; qkv, proj, fc1, fc2
    for op in prog.ops:
        assert op.fields.get("pair", 0) == int(op in weight_ops), op.name
    for op in weight_ops:
        slot, n = plan.layers[op.fields["entry"]], op.fields["rows"]
        assert op.ideal["engine"] == max(-(-n // 2) * slot.iterations, n * slot.beats)
        assert op.ideal["engine"] < slot.ideal_cycles(n) or n == 1
    # the 197 tokens' linear layers in 99 pairs: the engine's bound about halves
    linear = sum(plan.layers[op.fields["entry"]].ideal_cycles(op.fields["rows"])
                 for op in weight_ops)
    paired = sum(op.ideal["engine"] for op in weight_ops)
    assert paired == pytest.approx(linear * 99 / 197, rel=0.01)
    # not on a DSP48E1 part, not without row groups, not with a weight outside [-1, 1]
    assert not tokens_in_pairs(model, dataclasses.replace(plan, part="xc7z020clg400-1"))
    assert not tokens_in_pairs(model, fixed_plan(layers, rows, KV260, 16, 32))
    name = plan.layers[0].name
    weight = model.layers[name].weight.copy()
    weight[0, 0] = -2
    wide = dataclasses.replace(model, layers={**model.layers, name: dataclasses.replace(
        model.layers[name], weight=weight)})
    assert not tokens_in_pairs(wide, plan)
    # the bias tables: bias - 128 * sum_k w, so that (w + 1)(x + 128) sums back to w.x + bias
    paired_t, plain_t = model_tables(plan, layers, pairs=True), model_tables(plan, layers)
    first = layers[name]
    lanes = [_signed32(plain_t.bias[0] >> (32 * i)) - _signed32(paired_t.bias[0] >> (32 * i))
             for i in range(plan.pe)]
    assert lanes == (128 * first.weight[:plan.pe].sum(axis=1)).tolist()
    assert plain_t.weights == paired_t.weights and plain_t.mult == paired_t.mult


def _signed32(word: int) -> int:
    word &= (1 << 32) - 1
    return word - (1 << 32) if word >> 31 else word


def test_pairs_are_chosen_within_the_lut_budget(deit2: tuple) -> None:
    """The search tries each folding with and without tokens in pairs: at DeiT-Tiny's PE 16
    (x3 rows) x SIMD 32 the pairs' trees of ternary adders fit the 70% LUT budget with the
    operand buffer's lanes split (a RAM64X1D for each top bit), and their bound is 0.72 of
    single rows' at the same LayerNorm and softmax. Two RAM64M8 a lane would take the design
    just past the budget (82.1k LUT in Yosys, 70.1%)."""
    model, layers, rows, _ = deit2
    found: dict[bool, WholeModelPlan] = {}
    for _, prog, w in _designs(model, layers, rows, KV260, 16, 32, 3):
        if w.fits and (prog.pairs not in found or w.ideal_cycles_per_image
                       < found[prog.pairs].ideal_cycles_per_image):
            found[prog.pairs] = w
    pairs = found[True]
    assert pairs.ideal_cycles_per_image < 0.75 * found[False].ideal_cycles_per_image
    assert (pairs.ln_lanes, pairs.sm_lanes) == (4, 8)
    assert pairs.styles["operand"] == "distributed-split"
    unsplit = pairs.lut + round(_WHOLE_LUT_SCALE * 6 * pairs.pe * pairs.simd)
    assert pairs.lut <= KV260.lut * LUT_BUDGET < unsplit
    # a tighter budget (`--lut-budget`) leaves it out: what fits there is slower
    tight = [w for _, _, w in _designs(model, layers, rows, KV260, 16, 32, 3, 0.67) if w.fits]
    assert tight and all(w.lut <= KV260.lut * 0.67 for w in tight)
    assert min(w.ideal_cycles_per_image for w in tight) > pairs.ideal_cycles_per_image
