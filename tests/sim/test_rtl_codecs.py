"""The Verilog weight decoders (docs/engine.md, "Weight streams and decoders"): layers stored as
packed intB of mixed widths, N:M with compute skipping, codebooks and ternary run bit-exact on
Icarus and Verilator, against the golden model, in the engine and in the whole-model top.

Each design batches several layers on one engine (one build per design and simulator); the
hypothesis test draws whole designs and runs them on Icarus, whose builds take a second.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Design, random_rows, sim_params, small_int_model
from vitfpga.errors import VerificationFailed
from vitfpga.hls.emit.rtl import CODEBOOK_FILE, decoder_params, emit_rtl
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import engine_latency, fixed_plan
from vitfpga.ir import IntLinear
from vitfpga.quant.synthetic import random_layer, shape_weights
from vitfpga.runtime.model import IntModel, linear_golden
from vitfpga.sim.rtl import RtlSession, run_rtl

# Start-to-done cycles beyond rows*max(NF*SF, beats) with a free-flowing stream: the engine's
# latency (hls.plan.engine.engine_latency); an N:M run's first fold also waits for its R-beat
# windows (beats - SF more).

# name -> (PE, SIMD, [(K, N, bits, codec, relu)]); K and N not multiples of the folds on purpose.
# Small arrays: a Verilator build is most of a design's test time.
DESIGNS = {
    # every dense width in one memory: 8-bit lanes, int3 elements straddle words
    "dense_mixed": (2, 4, [(30, 5, 2, "dense", False), (24, 6, 3, "dense", True),
                           (13, 3, 4, "dense", False), (16, 4, 8, "dense", True)]),
    "nm24": (2, 4, [(40, 5, 4, "nm:2:4", False), (20, 3, 2, "nm:2:4", True),
                    (16, 4, 8, "nm:2:4", False)]),
    "nm14": (2, 4, [(64, 5, 4, "nm:1:4", True), (30, 3, 3, "nm:1:4", False)]),
    "nm12": (1, 4, [(30, 3, 3, "nm:1:2", False), (17, 2, 8, "nm:1:2", True)]),
    "codebook": (2, 4, [(30, 6, 4, "codebook:2", False), (20, 5, 8, "codebook:4", True),
                        (12, 3, 3, "codebook:3", False)]),
    # every codec in one engine
    "all": (2, 8, [(48, 12, 4, "nm:2:4", True), (40, 10, 2, "dense", False),
                   (24, 9, 4, "codebook:3", False), (16, 6, 8, "dense", True),
                   (35, 5, 3, "nm:2:4", False), (20, 4, 8, "codebook:4", False),
                   (29, 7, 2, "ternary", True)]),
}
# The mixed design with its trailing weight words in the start-up-loaded RAM (URAM).
SPLIT = ("all", 4)


def _layers(shapes: list[tuple[int, int, int, str, bool]], seed: int) -> dict[str, IntLinear]:
    layers = {}
    for i, (k, n, bits, codec, relu) in enumerate(shapes):
        name = f"blocks.{i}.fc"
        layers[name] = random_layer(k, n, bits=bits, relu=relu, seed=seed + i, name=name,
                                    codec=codec)
    return layers


def _design(root: Path, name: str, pe: int, simd: int, layers: dict[str, IntLinear],
            rom_depth: int | None = None, rows: int = 3, seed: int = 0) -> Design:
    plan = fixed_plan(layers, dict.fromkeys(layers, rows), get_board("pynq-z2"), pe, simd,
                      rom_depth)
    emit_rtl(plan, layers, root / name)
    jobs = []
    for i, layer in enumerate(layers.values()):
        x = random_rows(rows + i % 3, layer.k, seed=seed + 50 + i)
        jobs.append((layer.name, x, linear_golden(x, layer).astype(np.int64)))
    return Design(layers, plan, root / name / "rtl", root / name / "build", jobs)


@pytest.fixture(scope="module")
def designs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Design]:
    root = tmp_path_factory.mktemp("codecs")
    out = {}
    for d, (name, (pe, simd, shapes)) in enumerate(DESIGNS.items()):
        out[name] = _design(root, name, pe, simd, _layers(shapes, 100 * d), seed=100 * d)
    base, rom_depth = SPLIT
    pe, simd, _ = DESIGNS[base]
    out["split"] = _design(root, "split", pe, simd, out[base].layers, rom_depth)
    return out


def _check(results: list, d: Design) -> None:
    for r, (layer, x, _) in zip(results, d.jobs, strict=True):
        slot = d.plan.slot(layer)
        assert r.layer == layer and r.compared == x.shape[0] * slot.n > 0
        assert r.mismatches == 0, (layer, slot.codec)
        assert r.ideal_cycles == slot.ideal_cycles(x.shape[0])
        assert r.ideal_cycles <= r.cycles <= (r.ideal_cycles + engine_latency(d.plan.simd)
                                              + slot.beats - slot.sf), (layer, r.cycles)


# Each codec alone on Icarus (it builds in a second); the engine with every codec on both
# simulators. A Verilator build is most of a design's test time, and make test runs on 2 cores.
CASES = [pytest.param(name, sim, marks=getattr(pytest.mark, sim), id=f"{sim}-{name}")
         for name in DESIGNS for sim in (("icarus", "verilator") if name == "all"
                                         else ("icarus",))]


@pytest.mark.parametrize(("name", "sim"), CASES)
def test_codec_layers_bit_exact(sim: str, name: str, designs: dict[str, Design]) -> None:
    """Every layer of the design in program order, then in reverse, in one session."""
    d = designs[name]
    jobs = d.jobs + d.jobs[::-1]
    results = run_rtl(d.rtl_dir, d.plan, jobs, sim, d.build_dir)
    _check(results[:len(d.jobs)], d)
    assert all(r.mismatches == 0 for r in results)


def test_designs_build_the_decoders_they_need(designs: dict[str, Design]) -> None:
    """The parameters name only the decoders a design's layers use; the codebook file exists
    exactly when a codebook decoder does."""
    params = {name: decoder_params(d.plan) for name, d in designs.items()}
    assert params["dense_mixed"]["STRADDLE"] == 1 and params["dense_mixed"]["LANE_BITS"] == 8
    assert params["dense_mixed"]["WMASK"] == (1 << 2) | (1 << 3) | (1 << 4) | (1 << 8)
    assert (params["nm14"]["NM_N"], params["nm14"]["NM_M"], params["nm14"]["KINDS"]) == (1, 4, 2)
    assert params["codebook"]["CB_BITS"] == 4 and params["codebook"]["WMASK"] == 0
    assert params["all"]["KINDS"] == 15
    for name, d in designs.items():
        has = (d.rtl_dir / CODEBOOK_FILE).is_file()
        assert has == (params[name]["CB_BITS"] > 0), name
        assert params[name]["MAXBEATS"] == max(s.beats for s in d.plan.layers)


def _wrong(rtl: RtlSession, layer: str, x: np.ndarray, y: np.ndarray) -> bool:
    # All-zero codebook indices pick the table's first value, not 0, so padded channels may
    # then output non-zeros: the session calls that a fault, and it is a wrong result.
    try:
        return not np.array_equal(rtl.run(layer, x).y, y)
    except VerificationFailed:
        return True


@pytest.mark.parametrize("sim", sim_params("icarus"))
def test_mixed_codecs_with_weights_in_the_ram_part(sim: str, designs: dict[str, Design]) -> None:
    """The mixed design with most of its streams in the loadable RAM: bit-exact after the
    start-up load, and the layers there go wrong without it."""
    d = designs["split"]
    assert 0 < d.plan.rom_depth < d.plan.weight_depth
    _check(run_rtl(d.rtl_dir, d.plan, d.jobs, sim, d.build_dir), d)
    with RtlSession(d.rtl_dir, d.plan, sim, d.build_dir, load=False) as rtl:
        wrong = [_wrong(rtl, layer, x, y) for layer, x, y in d.jobs]
    in_rom = [s.w_base + s.words <= d.plan.rom_depth for s in d.plan.layers]
    assert wrong == [not r for r in in_rom] and any(wrong)


@pytest.mark.parametrize("sim", sim_params("icarus"))
def test_codecs_under_backpressure(sim: str, designs: dict[str, Design]) -> None:
    d = designs["all"]
    for r in run_rtl(d.rtl_dir, d.plan, d.jobs, sim, d.build_dir, stress=True, seed=5):
        assert r.compared > 0 and r.mismatches == 0 and r.cycles > r.ideal_cycles


@pytest.mark.icarus
def test_nm_2_4_takes_about_half_the_cycles_of_its_dense_twin(tmp_path: Path) -> None:
    """Compute skipping: a 2:4 layer (NF >= 2) against the same weights stored dense, at the
    same PE x SIMD, takes at most 0.55x the cycles."""
    sparse = random_layer(128, 16, bits=4, seed=7, name="fc", codec="nm:2:4")
    dense = dataclasses.replace(sparse, codec="dense")
    x = random_rows(8, 128, seed=8)
    cycles = {}
    for layer in (sparse, dense):
        d = _design(tmp_path, layer.codec.replace(":", "_"), 4, 8, {"fc": layer}, rows=8)
        assert d.plan.slot("fc").nf >= 2
        (r,) = run_rtl(d.rtl_dir, d.plan, [("fc", x, linear_golden(x, layer))], "icarus",
                       d.build_dir)
        assert r.mismatches == 0
        cycles[layer.codec] = r.cycles
    print(f"2:4 vs dense cycles: {cycles} ({cycles['nm:2:4'] / cycles['dense']:.3f}x)")
    assert cycles["nm:2:4"] <= 0.55 * cycles["dense"], cycles


_NM = ["nm:2:4", "nm:1:4", "nm:1:2"]


@st.composite
def _random_design(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int, int, str, bool]]]:
    pattern = draw(st.sampled_from(_NM))
    nm_n = int(pattern.split(":")[1])
    pe = draw(st.sampled_from([1, 2, 4]))
    simd = draw(st.sampled_from([s for s in (2, 4, 8) if s % nm_n == 0]))
    codecs = st.sampled_from(["dense", pattern, "codebook:1", "codebook:2", "codebook:3",
                              "codebook:4", "ternary"])
    shapes = draw(st.lists(st.tuples(st.integers(1, 70), st.integers(1, 12),
                                     st.sampled_from([2, 3, 4, 8]), codecs, st.booleans()),
                           min_size=1, max_size=4))
    # ternary packs int2 only
    return pe, simd, [(k, n, 2 if c == "ternary" else b, c, r) for k, n, b, c, r in shapes]


@pytest.mark.icarus
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=_random_design(), seed=st.integers(0, 2**16))
def test_random_codec_designs_bit_exact(case: tuple[int, int, list], seed: int) -> None:
    """Random K, N, weight bits, codecs, sparsity patterns and folding, one engine per draw."""
    pe, simd, shapes = case
    layers = _layers(shapes, seed)
    with tempfile.TemporaryDirectory(prefix="vitfpga-codecs-") as tmp:
        d = _design(Path(tmp), "d", pe, simd, layers, seed=seed)
        _check(run_rtl(d.rtl_dir, d.plan, d.jobs, "icarus", d.build_dir), d)


# Whole model: some of vit-digits' layers re-encoded, one N:M pattern for the model.
WHOLE_CODECS = {"patch_embed": "nm:2:4", "blocks.0.attn.qkv": "nm:2:4",
                "blocks.0.mlp.fc1": "codebook:3", "blocks.1.mlp.fc2": "nm:2:4",
                "blocks.1.attn.proj": "codebook:2", "head": "codebook:4"}


@pytest.mark.verilator
def test_whole_model_with_mixed_codecs_bit_exact(tmp_path: Path) -> None:
    """vitfpga_vit with N:M (the patch embedding too), codebook and dense layers against the
    golden forward pass, on random images."""
    import torch

    from vitfpga.hls.emit.vit import emit_vit
    from vitfpga.hls.plan.program import compile_vit
    from vitfpga.runtime.forward import logits
    from vitfpga.sim.vit import run_vit

    torch.set_num_threads(1)
    base = small_int_model(4)
    rng = np.random.default_rng(0)
    layers = dict(base.layers)
    for name, codec in WHOLE_CODECS.items():
        layer = layers[name]
        layers[name] = dataclasses.replace(
            layer, weight=shape_weights(layer.weight, codec, layer.weight_bits, rng), codec=codec)
    model = IntModel(base.spec, layers, base.params, base.scales)
    plan = fixed_plan(layers, model.rows(), get_board("pynq-z2"), 4, 4)
    assert plan.nm == (2, 4) and plan.codebook_bits == 4
    prog = compile_vit(model, plan)
    emit_vit(plan, layers, prog, tmp_path / "rtl")
    assert (tmp_path / "rtl" / CODEBOOK_FILE).read_text().count("\n") == \
        len(plan.layers) + len(prog.entries)
    spec = base.spec
    images = rng.standard_normal((3, spec.in_chans, spec.image_size, spec.image_size))
    r = run_vit(tmp_path / "rtl", prog, plan, model, images.astype(np.float32), "verilator",
                tmp_path / "build")
    np.testing.assert_array_equal(r.logits, logits(model, images.astype(np.float32)))
