"""Row groups (docs/engine.md, "Row groups"): the whole-model engine's weight layers on PE x
groups rows. The layout puts weight w[f*R + p, sf*SIMD + s] in lane p*SIMD + s of word f*SF + sf
(R = PE x groups), the program entry counts weight folds and says how many beats a row's last
fold has, the host-offload emitters refuse such a plan, and the whole-model search takes groups
where they make the design faster."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import digits_like, random_layer
from vitfpga.errors import BadInput
from vitfpga.hls.emit.hls import emit_hls
from vitfpga.hls.emit.rtl import emit_rtl
from vitfpga.hls.plan import whole
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import engine_latency, fixed_plan, folding_label
from vitfpga.hls.plan.layout import model_tables
from vitfpga.quant.codecs import unpack_lanes
from vitfpga.quant.synthetic import shape_weights
from vitfpga.sources import preset_int_model

PYNQ = get_board("pynq-z2")


def test_weight_words_hold_pe_times_groups_rows() -> None:
    layer = random_layer(12, 22, seed=3, bits=4, name="fc")  # K 12, N 22 on PE 2 x 3, SIMD 4
    plan = fixed_plan({"fc": layer}, {"fc": 1}, PYNQ, 2, 4, groups=3)
    slot = plan.slot("fc")
    assert (plan.rows, plan.word_bits) == (6, 6 * 4 * 4)
    assert (slot.sf, slot.nf, slot.folds) == (3, 11, 4)  # 11 beats of 2, folds of 6 rows
    assert slot.last_beats(3) == 2 and slot.ideal_cycles(5) == 5 * 4 * 3
    t = model_tables(plan, {"fc": layer})
    assert len(t.weights) == plan.weight_depth == slot.folds * slot.sf
    padded = np.zeros((slot.folds * 6, slot.sf * 4), dtype=np.int64)
    padded[:22, :12] = layer.weight
    for f in range(slot.folds):
        for sf in range(slot.sf):
            lanes = unpack_lanes(t.weights[f * slot.sf + sf], 4, 6 * 4)
            assert lanes == padded[f * 6:(f + 1) * 6, sf * 4:(sf + 1) * 4].reshape(-1).tolist()
    # tables stay PE lanes a word, one per output beat; the entry counts folds and flags the
    # last fold's beats minus one in bits 7:4
    assert len(t.bias) == slot.nf
    entry = t.program[0]
    assert entry["nf"] == 4 and entry["relu"] >> 4 == 1 and entry["relu"] & 1 == int(layer.relu)


def test_fixed_plan_refuses_groups_it_cannot_feed() -> None:
    layers, rows = digits_like()  # K = 32 at SIMD 16: SF 2
    with pytest.raises(BadInput, match=r"3 row groups need every layer's input folds SF >= 3"):
        fixed_plan(layers, rows, PYNQ, 4, 16, groups=3)
    with pytest.raises(BadInput, match="row groups must be 1 to 16"):
        fixed_plan(layers, rows, PYNQ, 4, 4, groups=17)
    sparse = {name: dataclasses.replace(
        layer, weight=shape_weights(layer.weight, "nm:2:4", layer.weight_bits,
                                    np.random.default_rng(0)), codec="nm:2:4")
        for name, layer in layers.items() if name != "patch_embed"}
    with pytest.raises(BadInput, match="built for dense and ternary weights only"):
        fixed_plan(sparse, rows, PYNQ, 4, 4, groups=2)


def test_host_offload_emitters_refuse_row_groups(tmp_path: Path) -> None:
    layers, rows = digits_like()
    layers = {k: v for k, v in layers.items() if k != "patch_embed"}  # K = 4: one input fold
    plan = fixed_plan(layers, rows, PYNQ, 4, 8, groups=2)
    for emit in (emit_rtl, emit_hls):
        with pytest.raises(BadInput, match="2 row groups, which only the whole-model design"):
            emit(plan, layers, tmp_path)
    assert not any(tmp_path.iterdir())


def test_latency_and_label() -> None:
    assert engine_latency(16, packed=True, groups=3) == engine_latency(16, packed=True) + 5
    assert folding_label(16, 16, 3) == "PE=16 (x3 rows) x SIMD=16"
    assert folding_label(8, 16) == "PE=8 x SIMD=16"


def test_search_takes_row_groups_where_they_are_faster() -> None:
    """vit-1m (ternary) on Pynq-Z2: the fastest fitting design has row groups, and is faster
    than the best design at the same PE x SIMD without them."""
    model, layers, rows, _ = preset_int_model("vit-1m", 2, codec="ternary")
    # 192 lanes: the default's choice, found sooner
    plan, _, best = whole.search_whole_model(model, layers, rows, PYNQ, max_lanes=192)
    assert best.fits and best.groups == plan.groups > 1
    assert plan.rows * plan.simd <= 192
    single = [w for _, _, w in whole._designs(model, layers, rows, PYNQ, plan.pe, plan.simd, 1)
              if w.fits]
    assert single and best.ideal_cycles_per_image < min(w.ideal_cycles_per_image
                                                        for w in single)
