"""The model plan: one engine, one weight memory, one program entry per layer."""

import dataclasses
import json

import numpy as np
import pytest

from tests.conftest import digits_like, random_layer
from vitfpga.errors import BadInput, DoesNotFit
from vitfpga.hls.plan.boards import Board, get_board
from vitfpga.hls.plan.engine import ModelPlan, check_model_plan, plan_model
from vitfpga.hls.plan.layout import PROGRAM_FIELDS, channel_words, pack_fields, weight_words
from vitfpga.quant.codecs import unpack_lanes


def test_plan_model_is_deterministic_and_round_trips() -> None:
    layers, rows = digits_like()
    a = plan_model(layers, rows, get_board("pynq-z2"))
    b = plan_model(layers, rows, get_board("pynq-z2"))
    assert a.to_json() == b.to_json()
    assert ModelPlan.from_json(a.to_json()) == a
    check_model_plan(a, layers)
    assert a.pe * a.simd <= 64 and a.mac_utilisation >= 0.95
    # Program entries tile the weight memory and the channel tables without gaps.
    w_base = c_base = 0
    for slot in a.layers:
        assert (slot.w_base, slot.c_base) == (w_base, c_base)
        assert slot.sf * a.simd >= slot.k and slot.nf * a.pe >= slot.n
        w_base, c_base = w_base + slot.words, c_base + slot.nf
    assert (a.weight_depth, a.channel_depth) == (w_base, c_base)
    assert a.cycles_per_image == sum(s.rows * s.sf * s.nf for s in a.layers)
    json.loads(a.to_json())


def test_more_lanes_means_fewer_cycles() -> None:
    layers, rows = digits_like()
    small = plan_model(layers, rows, get_board("pynq-z2"), max_lanes=16)
    large = plan_model(layers, rows, get_board("pynq-z2"), max_lanes=64)
    assert large.cycles_per_image < small.cycles_per_image


def test_plan_model_refuses_what_does_not_fit() -> None:
    layers = {f"l{i}": random_layer(768, 768, bits=8, seed=i, name=f"l{i}") for i in range(4)}
    rows = dict.fromkeys(layers, 197)
    tiny = Board("tiny", "xc7z007sclg400-1", 14_400, 28_800, 50, 0, 66, 100.0)
    with pytest.raises(DoesNotFit, match=r"needs .* BRAM36 at best, tiny offers 45 BRAM36"):
        plan_model(layers, rows, tiny)
    # URAM takes the trailing weight words (loaded at start-up) when block RAM alone is short...
    with_uram = Board("uram", "xczu3eg-sbva484-1-e", 70_560, 141_120, 50, 96, 360, 200.0)
    plan = plan_model(layers, rows, with_uram)
    assert 0 < plan.uram <= 96 and 0 < plan.ram_depth <= plan.weight_depth
    assert plan.bram36 <= 45 and plan.rom_depth + plan.ram_depth == plan.weight_depth
    # ...and the refusal counts the URAM it tried.
    few_uram = Board("few", "xczu3eg-sbva484-1-e", 70_560, 141_120, 50, 2, 360, 200.0)
    with pytest.raises(DoesNotFit, match=r"with 2 of its 2 URAM holding weights"):
        plan_model(layers, rows, few_uram)
    # Where block RAM suffices, nothing needs loading.
    assert plan_model(layers, rows, get_board("zcu102")).ram_depth == 0


def test_plan_counts_every_memory_as_synthesis_maps_it() -> None:
    """Weights as a ROM, plus bias/mult/shift tables and the input row buffer."""
    from vitfpga.hls.plan.engine import engine_memories
    from vitfpga.hls.plan.memory import map_memory

    layers, rows = digits_like()
    plan = plan_model(layers, rows, get_board("kv260"))
    weights = map_memory(plan.word_bits, plan.weight_depth, rom=True)
    assert plan.weight_bram36 == weights.bram36 and plan.uram == 0
    mem = engine_memories(plan.pe, plan.simd, plan.decoder(), plan.rom_depth, plan.ram_depth,
                          plan.channel_depth, plan.max_beats, len(plan.layers))
    assert plan.bram36 == mem.bram36 >= plan.weight_bram36
    assert plan.bram_efficiency == round(weights.efficiency, 4)


def test_check_model_plan_refuses_other_layers() -> None:
    layers, rows = digits_like()
    plan = plan_model(layers, rows, get_board("pynq-z2"))
    layers["head"] = random_layer(32, 12, name="head")
    with pytest.raises(BadInput, match="head"):
        check_model_plan(plan, layers)


def test_padding_layout() -> None:
    w = np.array([[1, -1, 2], [3, -3, 1], [-2, 2, 0]])  # N=3, K=3 onto PE=2, SIMD=2
    words = weight_words(dataclasses.replace(random_layer(3, 3), weight=w), 2, 2, 4)
    assert len(words) == 4
    assert unpack_lanes(words[1], 4, 4) == [2, 0, 1, 0]  # nf=0, sf=1: K padded with zeros
    assert unpack_lanes(words[3], 4, 4) == [0, 0, 0, 0]  # nf=1, sf=1: row 3 and col 3 padding
    assert [unpack_lanes(x, 32, 2) for x in channel_words(np.array([5, 6, 7]), 2, 32, 2**30)] \
        == [[5, 6], [7, 2**30]]


def test_program_fields_pack_lsb_first() -> None:
    fields = {"w_base": 5, "c_base": 7, "sf": 2, "nf": 3, "relu": 1, "codec": 1, "ebits": 6,
              "wbits": 4}
    word = pack_fields(fields)
    assert word & 0xFFFFFFFF == 5 and (word >> 32) & 0xFFFFFFFF == 7
    assert (word >> 64) & 0xFFFF == 2 and (word >> 80) & 0xFFFF == 3 and (word >> 96) & 0xFF == 1
    assert (word >> 104) & 0xFF == 1 and (word >> 112) & 0xFF == 6 and word >> 120 == 4
    assert sum(bits for _, bits in PROGRAM_FIELDS) == 128
    with pytest.raises(ValueError, match="does not fit"):
        pack_fields({**fields, "w_base": 2**32})
