"""The whole-model top (docs/vit.md) at DeiT-Tiny width: dim 192, 3 heads, MLP 768, one block on
5 tokens (a 32 x 32 image of 16 x 16 patches) instead of 12 blocks on 197, 20 classes, with
random int4 weights and the other parameters calibrated on a random float ViT of that shape.
The same top a DeiT-Tiny project emits: three row groups (the weight layers on PE x 3 rows, the
head's last fold two beats of three), its trailing weight words in URAM loaded at start-up,
SIMD wider than PE (the memories' lanes follow SIMD), BM in URAM and the operand buffer in LUT
RAM as the DeiT-Tiny plan places them, the op ROM in block RAM, and a softmax of half PE's
lanes (the core's gearbox hands each engine beat on in two parts and drops a row's
padding-only part: 5 tokens on 2 lanes); logits identical to the integer golden. With 2-bit
weights (all in [-1, 1]) the weight layers take their rows in pairs (vitfpga_mvu.v PAIR), the
5 tokens ending in a single row."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from vitfpga.hls.emit.vit import emit_vit
from vitfpga.hls.plan import whole
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import fixed_plan
from vitfpga.hls.plan.program import compile_vit
from vitfpga.quant.model import ViTConfig
from vitfpga.quant.structure import dense_structure
from vitfpga.quant.synthetic import shape_weights, structure_layers
from vitfpga.runtime.forward import logits
from vitfpga.sim.vit import run_vit
from vitfpga.sources import calibrated_int_model

DEIT_WIDTH = ViTConfig(image_size=32, patch_size=16, in_chans=3, dim=192, depth=1, heads=3,
                       mlp_ratio=4, num_classes=20)


@pytest.mark.verilator
@pytest.mark.parametrize("bits", [4, 2])
def test_deit_width_block_is_bit_exact_with_weights_in_uram(bits: int, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    layers, rows = structure_layers(dense_structure(DEIT_WIDTH, bits), DEIT_WIDTH, seed=1)
    model = calibrated_int_model(DEIT_WIDTH, layers, seed=1)
    assert (model.spec.dim, model.spec.heads, model.spec.mlp_hidden, model.spec.tokens) == (
        192, 3, 768, 5)
    kv260 = get_board("kv260")
    full = fixed_plan(layers, rows, kv260, 4, 16, groups=3)
    plan = fixed_plan(layers, rows, kv260, 4, 16, rom_depth=full.weight_depth // 2, groups=3)
    assert 0 < plan.ram_depth < plan.weight_depth
    assert plan.slot("head").last_beats(plan.groups) == 2
    prog = compile_vit(model, plan, sm=2)
    assert prog.sm_lanes == 2
    assert prog.pairs == (bits == 2)
    # the op ROM in block RAM, as a DeiT-Tiny program of 222 ops has it, for these 25 ops
    monkeypatch.setattr(whole, "OPS_LOGIC_MAX", 8)
    top = emit_vit(plan, layers, prog, tmp_path / "rtl",
                   {"bm": "ultra", "operand": "distributed-split"})[0].read_text()
    assert ".BM_STYLE(1)" in top and ".OP_STYLE(3)" in top and ".PG(3)" in top
    assert f".PAIR({int(bits == 2)})" in top
    assert ".OPS_BLOCK(1)" in top and ".EXP_BLOCK(1)" in top  # KV260 at 250 MHz
    images = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    expected = logits(model, images)
    assert len(np.unique(expected)) > 4  # the calibrated model's logits are not degenerate
    r = run_vit(tmp_path / "rtl", prog, plan, model, images, "verilator", tmp_path / "build")
    np.testing.assert_array_equal(r.logits, expected)
    assert r.cycles >= 2 * prog.bound_cycles()


# dim 40 on SIMD 16: the LayerNorm's 8-lane outputs make a row's engine beats 2 + 2 + 1 parts
# (the last beat zero past the row), and qkv's 2:4 pattern reads its input in windows of two
# beats, so that row has 4 beats: one zero beat after the LayerNorm's.
PADDED = ViTConfig(image_size=8, patch_size=4, in_chans=1, dim=40, depth=1, heads=2,
                   mlp_ratio=2, num_classes=10)


@pytest.mark.verilator
def test_layernorm_into_the_engine_pads_a_row_to_its_beats(tmp_path: Path) -> None:
    layers, rows = structure_layers(dense_structure(PADDED, 4), PADDED, seed=2)
    qkv = layers["blocks.0.attn.qkv"]
    layers["blocks.0.attn.qkv"] = dataclasses.replace(
        qkv, weight=shape_weights(qkv.weight, "nm:2:4", qkv.weight_bits,
                                  np.random.default_rng(2)), codec="nm:2:4")
    model = calibrated_int_model(PADDED, layers, seed=2)
    plan = fixed_plan(layers, rows, get_board("pynq-z2"), 4, 16)
    prog = compile_vit(model, plan)
    beats = {op.name: op.fields["beats"] for op in prog.ops if op.kind == "ln"}
    assert prog.ln_lanes == 8
    assert beats["blocks.0.norm1+blocks.0.attn.qkv"] == 4  # 40 elements are 3 beats of 16
    assert beats["blocks.0.norm2+blocks.0.mlp.fc1"] == 3
    emit_vit(plan, layers, prog, tmp_path / "rtl")
    images = np.random.default_rng(2).standard_normal((3, 1, 8, 8)).astype(np.float32)
    expected = logits(model, images)
    assert len(np.unique(expected)) > 4
    r = run_vit(tmp_path / "rtl", prog, plan, model, images, "verilator", tmp_path / "build")
    np.testing.assert_array_equal(r.logits, expected)
