"""The budget search: exact pricing of candidates, fits, and the choice."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import Board, get_board
from vitfpga.hls.plan.engine import plan_model
from vitfpga.quant.compress import base_structure
from vitfpga.quant.factorize import rank_structure
from vitfpga.quant.model import PRESETS, ViT, linear_shapes
from vitfpga.quant.recipe import CompressionRecipe, Prune
from vitfpga.quant.size import model_size
from vitfpga.quant.structure import SlotSpec, dense_structure, layer_type
from vitfpga.quant.synthetic import structure_layers
from vitfpga.search import (
    Candidate,
    bits_floor,
    candidates,
    choose,
    predicted_bits,
    price,
    refuse_early,
    stand_ins,
)

CFG = PRESETS["vit-digits"]


def _shared(bits: int, rank: int) -> dict[str, SlotSpec]:
    structure = dense_structure(CFG, bits)
    for b in range(CFG.depth):
        for t in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
            structure[f"blocks.{b}.{t}"] = SlotSpec(bits=bits, rank=rank, shared=True)
    return structure


@pytest.mark.parametrize("structure", [
    dense_structure(CFG, 4),
    {**dense_structure(CFG, 3), "blocks.1.mlp.fc1": SlotSpec(bits=3, rank=5, v_bits=4),
     "blocks.2.attn.qkv": SlotSpec(bits=2, rank=7, sparse=True)},
    _shared(4, 6),
], ids=["dense", "low-rank+sparse", "shared"])
def test_prediction_matches_what_quant_size_counts(structure: dict[str, SlotSpec]) -> None:
    """Priced without training, counted the way the exported model is: the same bits (the
    sparse term of a low-rank slot is stored dense on chip, whatever its sparsity)."""
    layers, rows = structure_layers(structure, CFG)
    recipe = CompressionRecipe(lowrank_sparse=0.1)
    size = model_size(ViT(CFG), layers, host_bits=123)
    assert predicted_bits(structure, CFG, recipe, 123) == size.total_bits
    assert set(rows) == set(layers)


def test_board_prices_the_encoded_engine() -> None:
    """An N:M candidate is planned as the engine stores it: N:M streams on the block layers,
    fewer weight words and fewer cycles than its dense twin at the same bits."""
    plain = CompressionRecipe(weight_bits=4)
    nm = dataclasses.replace(plain, prune=Prune.NM, prune_nm=(2, 4))
    structure = dense_structure(CFG, 4)
    layers, rows = stand_ins(nm, structure, CFG)
    assert {layers[n].codec for n in layers if layer_type(n)} == {"nm:2:4"}
    assert layers["patch_embed"].codec == layers["head"].codec == "dense"
    board = get_board("pynq-z2")
    sparse = plan_model(layers, rows, board)
    dense = plan_model(*stand_ins(plain, structure, CFG), board)
    assert sparse.onchip_weight_bits < dense.onchip_weight_bits
    assert sparse.nm == (2, 4)
    assert predicted_bits(structure, CFG, nm, 0) == model_size(ViT(CFG), layers, 0).total_bits


def _shapes() -> list[tuple[str, int, int, int]]:
    return linear_shapes(CFG)


def test_shared_decoders_are_identical_stand_ins() -> None:
    layers, _ = structure_layers(_shared(4, 6), CFG)
    assert (layers["blocks.0.mlp.fc1.v"].weight == layers["blocks.2.mlp.fc1.v"].weight).all()


def test_grid_covers_every_family_least_compressed_first() -> None:
    grid = candidates(CompressionRecipe(), CFG)
    families = {c.family for c in grid}
    assert families == {"bits", "pruning", "low-rank", "shared decoders"}
    assert [c.recipe.weight_bits for c in grid if c.family == "bits"] == [8, 4, 3, 2]


def test_the_floor_before_training_is_exact_or_a_true_lower_bound() -> None:
    """Every candidate is priced from the shapes before the teacher exists: exactly, or for
    low-rank (whose ranks follow the teacher's spectra) never above any rank allocation."""
    rng = np.random.default_rng(0)
    blocks = [s for s, *_ in _shapes() if layer_type(s)]
    for c in candidates(CompressionRecipe(lowrank_sparse=0.05), CFG):
        floor, exact = bits_floor(c.recipe, CFG, 123)
        base = base_structure(c.recipe, CFG)
        if exact:
            assert c.recipe.lowrank == "none"
            assert floor == predicted_bits(base, CFG, c.recipe, 123)
            continue
        for decay in (0.3, 0.9, 1.0):  # steep to flat spectra: few to many ranks
            spectra = {s: np.sort(rng.random(32))[::-1] * decay ** np.arange(32)
                       for s in blocks}
            structure = rank_structure(CFG, base, c.recipe.lowrank_keep, spectra)
            structure = {s: dataclasses.replace(spec, sparse=spec.factored)
                         for s, spec in structure.items()}
            assert floor <= predicted_bits(structure, CFG, c.recipe, 123), c.label


def test_an_impossible_budget_is_refused_from_the_floors() -> None:
    grid = candidates(CompressionRecipe(), CFG)
    smallest = min(bits_floor(c.recipe, CFG, 0)[0] for c in grid)
    refuse_early(grid, CFG, 0, smallest, "b")  # the smallest floor fits exactly: no refusal
    with pytest.raises(BadInput, match=r"no configuration fits b: the smallest \(int\d, .*\) "
                                       r"needs (at least )?\d+\.\d KB \(0\.0 KB over\)"):
        refuse_early(grid, CFG, 0, smallest - 1, "b")


def test_a_board_fit_comes_from_the_planner() -> None:
    tiny = Board("tiny", "xc7z007sclg400-1", 14400, 28800, 2, 0, 66, 100.0)
    cand = Candidate("bits", CompressionRecipe(weight_bits=8))
    price(cand, dense_structure(CFG, 8), CFG, 0, None, tiny)
    assert not cand.fits and "BRAM36" in cand.why
    price(cand, dense_structure(CFG, 8), CFG, 0, None, get_board("pynq-z2"))
    assert cand.fits and "PE" in cand.why


def test_choose_scores_one_finalist_per_family_and_explains_misses() -> None:
    def cand(family: str, bits: int, fits: bool) -> Candidate:
        recipe = CompressionRecipe(weight_bits={900: 8, 500: 4, 300: 2}.get(bits, 3))
        return Candidate(family, recipe, bits=bits, fits=fits, why="x")

    grid = [cand("bits", 900, False), cand("bits", 500, True), cand("bits", 300, True),
            cand("low-rank", 400, True)]
    scored = []
    best = choose(grid, lambda c: scored.append(c.bits) or {500: 0.9, 400: 0.95}[c.bits], "b")
    assert sorted(scored) == [400, 500] and best.bits == 400
    with pytest.raises(BadInput, match=r"no configuration fits b: the smallest \(int2\) "
                                       r"needs 0\.0 KB"):
        choose([cand("bits", 300, False)], lambda c: 0.0, "b")


def test_the_trained_model_is_checked_against_the_board() -> None:
    """After training, the exported model is planned on the board the search chose for: a
    model that does not fit is refused, naming the board, before the run is kept."""
    from tests.conftest import small_int_model
    from vitfpga.errors import DoesNotFit
    from vitfpga.pipeline import _check_fit

    model = small_int_model(bits=4)
    _check_fit(model, get_board("pynq-z2"))  # fits: nothing raised
    tiny = Board("tiny", "xc7z007sclg400-1", 2_000, 4_000, 1, 0, 20, 100.0)
    with pytest.raises(DoesNotFit, match="the trained model does not fit tiny, though the "
                                         "search predicted it would"):
        _check_fit(model, tiny)
