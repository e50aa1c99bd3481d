"""The HLS engine's weight decoders (vitfpga/wdec.h): layers stored as packed intB of mixed
widths, N:M with compute skipping, and codebook indices, compiled with g++ and run against the
integer golden, bit for bit (docs/engine.md, "Weight streams and decoders")."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitfpga.hls.emit.hls import emit_hls, read_matrix
from vitfpga.hls.emit.templating import hexword
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, fixed_plan
from vitfpga.ir import IntLinear
from vitfpga.quant.synthetic import random_layer, random_rows
from vitfpga.runtime.codecs import SUPPORTED_BITS, pack_lanes
from vitfpga.runtime.model import linear_golden
from vitfpga.sim.csim import run_csim
from vitfpga.sim.result import SimResult

pytestmark = pytest.mark.gxx

# (name, K, N, weight bits, codec); relu on every other layer.
Spec = tuple[str, int, int, int, str]


def _layers(specs: list[Spec], seed: int = 0) -> dict[str, IntLinear]:
    return {name: random_layer(k, n, bits=bits, relu=i % 2 == 1, seed=seed + i, name=name,
                               codec=codec)
            for i, (name, k, n, bits, codec) in enumerate(specs)}


def _plan(layers: dict[str, IntLinear], pe: int, simd: int,
          rom_depth: int | None = None) -> ModelPlan:
    return fixed_plan(layers, dict.fromkeys(layers, 4), get_board("pynq-z2"), pe, simd,
                      rom_depth=rom_depth)


def _jobs(plan: ModelPlan, layers: dict[str, IntLinear],
          rows: int = 3) -> list[tuple[str, np.ndarray, np.ndarray]]:
    jobs = []
    for i, slot in enumerate(plan.layers):
        x = random_rows(1 + (rows + i) % 4, slot.k, seed=100 + i)
        jobs.append((slot.name, x, linear_golden(x, layers[slot.name])))
    return jobs


def _csim(root: Path, plan: ModelPlan, layers: dict[str, IntLinear],
          jobs: list[tuple[str, np.ndarray, np.ndarray]] | None = None) -> list[SimResult]:
    emit_hls(plan, layers, root / "out")
    return run_csim(root / "out" / "hls", plan, jobs or _jobs(plan, layers), root / "build")


def _assert_golden(results: list[SimResult], plan: ModelPlan) -> None:
    assert [r.layer for r in results] == [s.name for s in plan.layers]
    for r in results:
        assert r.compared > 0 and r.mismatches == 0, (r.layer, plan.slot(r.layer).codec)


def _straddles(plan: ModelPlan, name: str) -> bool:
    """Some element of the layer's stream spans two weight words."""
    slot, w = plan.slot(name), plan.lane_bits
    return any((it * slot.ebits) % w + slot.ebits > w for it in range(slot.iterations))


def _nm_rows_are_compute_skipped(plan: ModelPlan, simd: int) -> None:
    """R beats a compute fold: an N:M layer takes 1/R of its dense twin's iterations."""
    r = plan.nm_ratio
    assert r > 1
    assert all(s.beats == s.sf * r and s.sf == math.ceil(s.k / (r * simd)) for s in plan.layers)


# One design per codec family alone, so each decoder also builds without the others (no N:M
# window, no codebook table); plain dense designs are tests/sim/test_csim.py's. nm:1:2 runs in
# the split design below and in the random ones.
@pytest.mark.parametrize("specs", [
    [("n.a", 45, 9, 4, "nm:2:4"), ("n.b", 16, 5, 2, "nm:2:4")],
    [("n.a", 50, 7, 8, "nm:1:4"), ("n.b", 9, 3, 3, "nm:1:4")],
], ids=["nm:2:4", "nm:1:4"])
def test_nm_layers_match_golden_and_use_their_positions(tmp_path: Path,
                                                       specs: list[Spec]) -> None:
    """Each kept weight meets the input its position names: the golden of the same kept values at
    other positions (every group rolled by one) disagrees with the engine."""
    layers = _layers(specs, seed=7)
    plan = _plan(layers, pe=3, simd=4)
    assert plan.decoder().nm and not plan.codebook_bits
    _nm_rows_are_compute_skipped(plan, 4)
    jobs = _jobs(plan, layers)
    _assert_golden(_csim(tmp_path, plan, layers, jobs), plan)

    name, x, y = jobs[0]
    layer, m = layers[name], plan.nm[1]
    weight = np.pad(layer.weight, ((0, 0), (0, -layer.k % m)))
    moved = np.roll(weight.reshape(layer.n, -1, m), 1, axis=2).reshape(layer.n, -1)[:, :layer.k]
    other = linear_golden(x, dataclasses.replace(layer, weight=moved))
    assert not np.array_equal(other, y)
    results = run_csim(tmp_path / "out" / "hls", plan, [(name, x, other)], tmp_path / "build")
    assert results[0].mismatches > 0


def test_codebook_layers_match_golden_and_read_their_own_table(tmp_path: Path) -> None:
    """A codebook-only design (3- and 2-bit indices of 8- and 4-bit values); each layer's weights
    come from its own table word: given its table negated, the first layer misses the golden and
    the second does not."""
    layers = _layers([("c.a", 30, 7, 8, "codebook:3"), ("c.b", 19, 5, 4, "codebook:2")], seed=2)
    plan = _plan(layers, pe=3, simd=4)
    assert (plan.codebook_bits, plan.nm, plan.lane_bits) == (3, (), 3)
    jobs = _jobs(plan, layers)
    _assert_golden(_csim(tmp_path, plan, layers, jobs), plan)

    weights = tmp_path / "out" / "hls" / "weights.h"
    text = weights.read_text()
    table = text.split("vitfpga_codebook[")[1].splitlines()[1]
    digits = table.split('"0x')[1].split('"')[0]
    # Every int8 value negated: 0 (which padding indexes) stays 0, the layer's weights flip.
    negated = "".join(f"{-int(digits[i:i + 2], 16) & 0xFF:02x}" for i in range(0, len(digits), 2))
    assert negated != digits
    weights.write_text(text.replace(table, table.replace(digits, negated)))
    broken = run_csim(tmp_path / "out" / "hls", plan, jobs, tmp_path / "build")
    assert [r.mismatches > 0 for r in broken] == [True, False]


def test_single_width_dense_words_are_the_plain_layout(tmp_path: Path) -> None:
    """One width throughout: weights.h word w_base + nf*SF + sf holds w[nf*PE+p][sf*SIMD+s] in
    lane p*SIMD + s, as before the streams (no g++ needed)."""
    layers = _layers([("a", 19, 7, 4, "dense"), ("b", 9, 5, 4, "dense")], seed=4)
    plan = _plan(layers, pe=2, simd=4)
    emit_hls(plan, layers, tmp_path / "out")
    text = (tmp_path / "out" / "hls" / "weights.h").read_text()
    got = re.findall(r'\bword_t\("0x([0-9a-f]+)", 16\)', text)
    want = []
    for slot in plan.layers:
        w = np.zeros((slot.nf * 2, slot.sf * 4), dtype=np.int64)
        w[:slot.n, :slot.k] = layers[slot.name].weight
        want += [hexword(pack_lanes(w[nf * 2:nf * 2 + 2, sf * 4:sf * 4 + 4].reshape(-1), 4), 32)
                 for nf in range(slot.nf) for sf in range(slot.sf)]
    assert got == want and plan.word_bits == 32


def test_ternary_layers_alone_match_golden(tmp_path: Path) -> None:
    """Only ternary layers (5-bit lanes, no other decoder): each element serves three
    iterations, across output folds and with rows whose iteration count is no multiple of 3."""
    layers = _layers([("t.a", 26, 9, 2, "ternary"), ("t.b", 7, 4, 2, "ternary")], seed=8)
    plan = _plan(layers, pe=2, simd=4)
    assert plan.lane_bits == 5 and [s.iterations for s in plan.layers] == [35, 4]
    assert [s.words for s in plan.layers] == [12, 2]  # ceil(iterations / 3) elements a lane
    _assert_golden(_csim(tmp_path, plan, layers), plan)


MIXED_WIDTHS = [("w2", 23, 9, 2, "dense"), ("w3", 30, 7, 3, "dense"),
                ("w4", 17, 10, 4, "dense"), ("w8", 12, 5, 8, "dense")]


def test_dense_mixed_widths_straddle_and_need_the_held_word(tmp_path: Path) -> None:
    """2-, 3-, 4- and 8-bit layers share 8-bit lanes; the 3-bit stream straddles words, and a
    decoder that ignored the word read the iteration before gets exactly those layers wrong."""
    layers = _layers(MIXED_WIDTHS, seed=3)
    plan = _plan(layers, pe=2, simd=4)
    assert plan.lane_bits == 8 and plan.decoder().offset_step == 1
    assert [s.ebits for s in plan.layers] == [2, 3, 4, 8]
    assert [_straddles(plan, s.name) for s in plan.layers] == [False, True, False, False]
    # Packed, not padded to the widest lane: a 2-bit layer takes a quarter of the words.
    w2 = plan.slot("w2")
    assert w2.words == math.ceil(w2.iterations / 4)
    jobs = _jobs(plan, layers)
    _assert_golden(_csim(tmp_path, plan, layers, jobs), plan)

    wdec = tmp_path / "out" / "hls" / "include" / "vitfpga" / "wdec.h"
    text = wdec.read_text()
    old = "const elem_t lo = straddle ? lane_u<W>(held, i) : hi;"
    assert text.count(old) == 1
    wdec.write_text(text.replace(old, "const elem_t lo = hi;"))
    broken = run_csim(tmp_path / "out" / "hls", plan, jobs, tmp_path / "build")
    assert [r.mismatches > 0 for r in broken] == [False, True, False, False]


ALL_CODECS = [
    ("m.dense2", 21, 9, 2, "dense"),
    ("m.tern", 22, 7, 2, "ternary"),
    ("m.nm8", 40, 7, 8, "nm:2:4"),
    ("m.cb1", 18, 5, 8, "codebook:1"),
    ("m.dense3", 26, 11, 3, "dense"),
    ("m.cb4", 33, 6, 8, "codebook:4"),
    ("m.nm3", 13, 4, 3, "nm:2:4"),
    ("m.cb2", 9, 10, 2, "codebook:2"),
    ("m.dense8", 15, 3, 8, "dense"),
    ("m.tern1", 3, 2, 2, "ternary"),
]


def test_a_model_mixing_every_codec_matches_golden(tmp_path: Path) -> None:
    layers = _layers(ALL_CODECS, seed=11)
    plan = _plan(layers, pe=4, simd=4)
    spec = plan.decoder()
    assert (plan.lane_bits, spec.nm, spec.codebook_bits) == (10, (2, 4), 4)
    assert {s.codec for s in plan.layers} == {"dense", "nm:2:4", "codebook:1", "codebook:4",
                                              "codebook:2", "ternary"}
    # Ternary elements serve three iterations; rows of 6x1 folds and of a single fold.
    assert [s.iterations for s in plan.layers if s.codec == "ternary"] == [12, 1]
    assert sum(_straddles(plan, s.name) for s in plan.layers) >= 3
    _assert_golden(_csim(tmp_path, plan, layers), plan)


SPLIT = [("s.dense3", 27, 9, 3, "dense"), ("s.nm", 44, 7, 4, "nm:1:2"),
         ("s.cb", 20, 6, 8, "codebook:2"), ("s.tern", 30, 5, 2, "ternary"),
         ("s.dense8", 11, 5, 8, "dense")]


def test_a_mixed_model_split_into_rom_and_loaded_ram(tmp_path: Path) -> None:
    """The weight words of a mixed model split mid-way through the N:M layer's stream, at a word
    whose first element straddles the boundary from the ROM into the loaded RAM."""
    layers = _layers(SPLIT, seed=5)
    whole = _plan(layers, pe=4, simd=4)
    nm, lane = whole.slot("s.nm"), whole.lane_bits
    assert (lane, nm.ebits, whole.nm_ratio) == (8, 5, 2)
    # The first word of the N:M stream that an element enters mid-way.
    split = next(nm.w_base + (it * nm.ebits) // lane + 1 for it in range(nm.iterations)
                 if (it * nm.ebits) % lane + nm.ebits > lane)
    plan = _plan(layers, pe=4, simd=4, rom_depth=split)
    assert nm.w_base < split < nm.w_base + nm.words and plan.ram_depth > 0
    jobs = _jobs(plan, layers)
    _assert_golden(_csim(tmp_path, plan, layers, jobs), plan)

    # Without the start-up load the RAM reads as zeros: exactly the layers with words there miss.
    # (Zero codebook indices and ternary elements are not zero weights, so those layers' padded
    # channels may light up too: a protocol error, exit 2.)
    build = tmp_path / "build"
    proc = subprocess.run([str(build / "csim"), "--no-load", "jobs.txt"], cwd=build,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (1, 2) and "LOAD SKIPPED" in proc.stdout, proc.stderr
    missed = [not np.array_equal(read_matrix(build / f"job{i}_output.txt"), y)
              for i, (_, _, y) in enumerate(jobs)]
    assert missed == [s.w_base + s.words > split for s in plan.layers]


_CODECS = st.sampled_from(["dense", "codebook:1", "codebook:2", "codebook:3", "codebook:4",
                           "ternary", "nm"])


@st.composite
def _designs(draw: st.DrawFn) -> tuple[list[Spec], int, int]:
    """A layer set of random shapes, widths and codecs (one N:M pattern at most), and a folding
    it runs on."""
    pattern = draw(st.sampled_from(["nm:2:4", "nm:1:4", "nm:1:2"]))
    keep = int(pattern.split(":")[1])  # N: SIMD must be a multiple of it
    specs = []
    for i in range(draw(st.integers(4, 7))):
        codec = draw(_CODECS)
        bits = 2 if codec == "ternary" else draw(st.sampled_from(SUPPORTED_BITS))
        specs.append((f"h{i}", draw(st.integers(1, 48)), draw(st.integers(1, 12)), bits,
                      pattern if codec == "nm" else codec))
    pe = draw(st.integers(1, 5))
    simd = keep * draw(st.integers(1, 3)) if any(c == pattern for *_, c in specs) \
        else draw(st.integers(1, 6))
    return specs, pe, simd


@settings(max_examples=3, deadline=None)
@given(design=_designs(), seed=st.integers(0, 2**16))
def test_random_layer_sets_match_golden(tmp_path_factory: pytest.TempPathFactory,
                                        design: tuple[list[Spec], int, int], seed: int) -> None:
    specs, pe, simd = design
    layers = _layers(specs, seed=seed)
    plan = _plan(layers, pe, simd)
    _assert_golden(_csim(tmp_path_factory.mktemp("random"), plan, layers), plan)
