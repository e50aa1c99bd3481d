"""Encoded weight streams: every codec round-trips through the words the hardware reads, the
planner counts encoded words (not widest-lane padding), and picks codecs the hardware runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import fixed_plan, plan_model
from vitfpga.hls.plan.layout import model_tables, pad_input
from vitfpga.ir import encode_layers
from vitfpga.quant.synthetic import random_layer
from vitfpga.runtime.codecs import (
    NM_PATTERNS,
    choose_codecs,
    codec_for,
    decode_stream,
    stream_words,
)

CODECS = ["dense", *(f"nm:{n}:{m}" for n, m in NM_PATTERNS), "codebook:1", "codebook:2",
          "codebook:3", "codebook:4", "ternary"]


def _layer(k: int, n: int, bits: int, codec: str, seed: int, name: str = "blocks.0.mlp.fc1"):
    if codec.startswith("codebook") and (1 << int(codec.split(":")[1])) > 2 ** bits - 1:
        codec = f"codebook:{max(1, bits - 1)}"
    if codec == "ternary" and bits != 2:
        codec = "dense"
    return random_layer(k, n, bits=bits, seed=seed, name=name, codec=codec)


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 70), n=st.integers(1, 24), bits=st.sampled_from([2, 3, 4, 8]),
       codec=st.sampled_from(CODECS), pe=st.sampled_from([1, 2, 4, 8]),
       simd=st.sampled_from([2, 4, 8]), extra=st.integers(0, 5), seed=st.integers(0, 99))
def test_every_codec_round_trips_through_its_words(k: int, n: int, bits: int, codec: str,
                                                   pe: int, simd: int, extra: int,
                                                   seed: int) -> None:
    layer = _layer(k, n, bits, codec, seed)
    c = codec_for(layer.codec, bits)
    lane = c.element_bits + extra  # a memory lane at least as wide as the element
    elements = c.elements(layer.weight, pe, simd)
    sf, nf = c.folds(k, n, pe, simd)
    count = c.stream_elements(k, n, pe, simd)
    assert elements.shape == (count, pe * simd) and count == math.ceil(sf * nf / c.group)
    assert elements.min() >= 0 and elements.max() < 1 << c.element_bits
    words = stream_words(elements, c.element_bits, lane)
    assert len(words) == c.words(k, n, pe, simd, lane) == math.ceil(count * c.element_bits / lane)
    assert all(0 <= w < 1 << (pe * simd * lane) for w in words)
    back = decode_stream(words, count, pe * simd, c.element_bits, lane)
    decoded = c.decode(back, c.table(layer.weight), k, n, pe, simd)
    assert np.array_equal(decoded, layer.weight)


def test_nm_skips_compute_and_keeps_positions() -> None:
    # one row, K = 8, 2:4: groups [0 5 0 -3] and [7 0 0 1] on SIMD 4 -> one iteration
    w = np.array([[0, 5, 0, -3, 7, 0, 0, 1]])
    c = codec_for("nm:2:4", 4)
    assert c.folds(8, 1, 1, 4) == (1, 1) and codec_for("dense", 4).folds(8, 1, 1, 4) == (2, 1)
    e = c.elements(w, 1, 4)[0]
    pos, val = e & 3, e >> 2
    assert pos.tolist() == [1, 3, 0, 3]
    assert [v - 16 if v & 8 else v for v in val.tolist()] == [5, -3, 7, 1]
    assert c.folding_error(4) is None and codec_for("nm:2:4", 4).folding_error(1)


def test_codebook_tables_hold_zero_for_padding() -> None:
    w = np.array([[3, -5, 3], [7, 3, -5]])  # no zero among the weights
    c = codec_for("codebook:2", 4)
    assert c.table(w) == [-5, 0, 3, 7]
    e = c.elements(w, 2, 2)  # K padded to 4, N to 2: the padding indexes the 0
    assert e.tolist() == [[2, 0, 3, 2], [2, 1, 0, 1]]
    with pytest.raises(ValueError, match="do not fit a 2-entry codebook; use codebook:2"):
        codec_for("codebook:1", 4).table(w)


def test_ternary_packs_three_iterations_in_five_bits() -> None:
    w = np.array([[1, 0, -1, -1, 1]])  # K = 5 on SIMD 1: five iterations, two elements
    c = codec_for("ternary", 2)
    e = c.elements(w, 1, 1)
    assert e[:, 0].tolist() == [2 + 3 * 1 + 9 * 0, 0 + 3 * 2 + 9 * 1]  # the 6th trit pads 0
    assert c.counted_bits(w) == 9 and c.words(5, 1, 1, 1, 8) == 2
    with pytest.raises(ValueError, match="ternary packs int2 weights"):
        codec_for("ternary", 4)


def test_codec_names_are_checked() -> None:
    for bad, match in (("nm:3:4", "no hardware decoder"), ("nm:2", "takes 2 parameter"),
                       ("codebook:9", "1..4"), ("codebook:x", "non-integer"),
                       ("bitmap", "no hardware decoder yet"), ("zip", "unknown weight codec")):
        with pytest.raises(ValueError, match=match):
            codec_for(bad, 4)
    layer = random_layer(8, 4, bits=4, seed=0)
    with pytest.raises(ValueError, match=r"codec 'nm:2:4': weights are not 2:4 sparse"):
        type(layer)(**{**layer.__dict__, "codec": "nm:2:4"}).validate()


def test_choose_codecs_takes_the_cheapest_exact_one() -> None:
    sparse = random_layer(32, 16, bits=4, seed=1, codec="nm:1:4").weight
    few = random_layer(32, 16, bits=8, seed=2, codec="codebook:2").weight
    dense = random_layer(32, 16, bits=4, seed=3).weight
    chosen = choose_codecs({"a": (sparse, 4), "b": (few, 8), "c": (dense, 4)})
    assert chosen == {"a": "nm:1:4", "b": "codebook:2", "c": "dense"}
    # one N:M pattern per model: 1:4 is also 2:4, so a 1:4 layer among 2:4 ones is stored 2:4
    # (2 x 3 bits a weight each beats 1.5 for one and 4 for the others)...
    half = [random_layer(32, 16, bits=4, seed=s, codec="nm:2:4").weight for s in (4, 5)]
    both = choose_codecs({"a": (sparse, 4), "h": (half[0], 4), "i": (half[1], 4)})
    assert both == {"a": "nm:2:4", "h": "nm:2:4", "i": "nm:2:4"}
    # ...but beside one 2:4 layer, 1:4 and a dense other layer are cheaper
    alone = choose_codecs({"a": (sparse, 4), "h": (half[0], 4)})
    assert alone == {"a": "nm:1:4", "h": "dense"}


def _mixed() -> tuple[dict, dict]:
    spec = [("patch_embed", 16, 32, 8, "dense"), ("blocks.0.attn.qkv", 32, 96, 2, "dense"),
            ("blocks.0.attn.proj", 32, 32, 3, "dense"), ("blocks.0.mlp.fc1", 32, 64, 4, "nm:2:4"),
            ("blocks.0.mlp.fc2", 64, 32, 4, "codebook:3"), ("head", 32, 10, 8, "dense")]
    layers = {name: random_layer(k, n, bits=b, seed=i, name=name, codec=c)
              for i, (name, k, n, b, c) in enumerate(spec)}
    return layers, {name: 17 for name in layers}


@pytest.mark.parametrize(("pe", "simd"), [(4, 4), (16, 4), (2, 8), (8, 2)])
def test_plan_stores_each_layer_in_its_encoding(pe: int, simd: int) -> None:
    layers, rows = _mixed()
    plan = fixed_plan(layers, rows, get_board("pynq-z2"), pe, simd)
    assert (plan.lane_bits, plan.weight_bits, plan.nm, plan.codebook_bits) == (8, 8, (2, 4), 3)
    tables = model_tables(plan, layers)
    counted = 0
    for s in plan.layers:
        layer, c = layers[s.name], codec_for(s.codec, s.bits)
        assert (s.codec, s.ebits, s.beats) == (layer.codec, c.element_bits, s.sf * c.ratio)
        words = tables.weights[s.w_base:s.w_base + s.words]
        back = decode_stream(words, c.stream_elements(s.k, s.n, pe, simd), pe * simd, s.ebits,
                             plan.lane_bits)
        assert np.array_equal(c.decode(back, c.table(layer.weight), s.k, s.n, pe, simd),
                              layer.weight)
        counted += c.counted_bits(layer.weight)
    assert plan.onchip_weight_bits <= 1.10 * counted
    # no widest-lane padding: far fewer bits than dense 8-bit lanes would take
    dense8 = sum(math.ceil(s.n / pe) * math.ceil(s.k / simd) for s in plan.layers) * pe * simd * 8
    assert plan.weight_depth * plan.word_bits < 0.6 * dense8
    assert tables.codebook[4] != 0 and len(tables.codebook) == len(plan.layers)


def test_nm_layers_take_fewer_cycles_and_wider_rows() -> None:
    dense = {"blocks.0.mlp.fc1": random_layer(64, 64, bits=4, seed=0)}
    sparse = {"blocks.0.mlp.fc1": random_layer(64, 64, bits=4, seed=0, codec="nm:2:4")}
    rows = {"blocks.0.mlp.fc1": 10}
    a = fixed_plan(dense, rows, get_board("kv260"), 4, 8).layers[0]
    b = fixed_plan(sparse, rows, get_board("kv260"), 4, 8).layers[0]
    assert b.ideal_cycles(10) * 2 == a.ideal_cycles(10) and b.beats == a.beats == 8
    x = pad_input(np.ones((3, 64)), b, 8)
    assert x.shape == (3, 64)
    with pytest.raises(BadInput, match="SIMD 1: N:M 2:4 layers need SIMD a multiple of 2"):
        fixed_plan(sparse, rows, get_board("kv260"), 4, 1)
    assert plan_model(sparse, rows, get_board("kv260")).simd >= 2


def test_mixed_nm_patterns_are_refused_in_one_line() -> None:
    layers = {"blocks.0.mlp.fc1": random_layer(16, 8, seed=0, codec="nm:2:4"),
              "blocks.0.mlp.fc2": random_layer(8, 16, seed=1, codec="nm:1:2",
                                               name="blocks.0.mlp.fc2")}
    with pytest.raises(BadInput, match=r"mix N:M patterns \[\(1, 2\), \(2, 4\)\]"):
        plan_model(layers, dict.fromkeys(layers, 4), get_board("kv260"))


def test_encode_layers_sets_the_chosen_codecs() -> None:
    layers, _ = _mixed()
    plain = {n: type(v)(**{**v.__dict__, "codec": "dense"}) for n, v in layers.items()}
    encoded = encode_layers(plain)
    assert encoded["blocks.0.mlp.fc1"].codec == "nm:2:4"
    assert encoded["blocks.0.mlp.fc2"].codec.startswith("codebook")
    assert encoded["patch_embed"].codec == "dense"
    assert all(np.array_equal(encoded[n].weight, plain[n].weight) for n in plain)
