"""The budget search: exact pricing of candidates, fits, and the choice."""

from __future__ import annotations

import dataclasses

import pytest

from vitfpga.config import RunConfig
from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import Board, get_board
from vitfpga.quant.model import PRESETS, ViT, linear_shapes
from vitfpga.quant.size import model_size
from vitfpga.quant.structure import SlotSpec, dense_structure
from vitfpga.quant.synthetic import structure_layers
from vitfpga.search import Candidate, candidates, choose, predicted_bits, price

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
    stand-in layers have no zeros, so the sparse term is priced as its dense bitmap bound)."""
    layers, rows = structure_layers(structure, CFG)
    for layer in layers.values():
        layer.weight[layer.weight == 0] = 1
    cfg = RunConfig(lowrank_sparse=1e-9)  # the sparse term's non-zeros: ~0 of them
    size = model_size(ViT(CFG), layers, host_bits=123)
    sparse = sum(k * n for name, k, n, _ in _shapes() if structure[name].sparse)
    sparse_bits = sum(layers[f"{name}.s"].weight.size * layers[f"{name}.s"].weight_bits
                      for name, *_ in _shapes() if structure[name].sparse)
    assert predicted_bits(structure, CFG, cfg, 123) == size.total_bits - sparse_bits + sparse
    assert set(rows) == set(layers)


def _shapes() -> list[tuple[str, int, int, int]]:
    return linear_shapes(CFG)


def test_shared_decoders_are_identical_stand_ins() -> None:
    layers, _ = structure_layers(_shared(4, 6), CFG)
    assert (layers["blocks.0.mlp.fc1.v"].weight == layers["blocks.2.mlp.fc1.v"].weight).all()


def test_grid_covers_every_family_least_compressed_first() -> None:
    grid = candidates(RunConfig(), CFG)
    families = {c.family for c in grid}
    assert families == {"bits", "pruning", "low-rank", "shared decoders"}
    assert [c.cfg.weight_bits for c in grid if c.family == "bits"] == [8, 4, 3, 2]


def test_a_board_fit_comes_from_the_planner() -> None:
    tiny = Board("tiny", "xc7z007sclg400-1", 14400, 28800, 2, 0, 66, 100.0)
    cand = Candidate("bits", RunConfig(weight_bits=8))
    price(cand, dense_structure(CFG, 8), CFG, 0, None, tiny)
    assert not cand.fits and "BRAM36" in cand.why
    price(cand, dense_structure(CFG, 8), CFG, 0, None, get_board("pynq-z2"))
    assert cand.fits and "PE" in cand.why


def test_choose_scores_one_finalist_per_family_and_explains_misses() -> None:
    def cand(family: str, bits: int, fits: bool) -> Candidate:
        return Candidate(family, dataclasses.replace(RunConfig(), weight_bits=bits), bits=bits,
                         fits=fits, why="x")

    grid = [cand("bits", 900, False), cand("bits", 500, True), cand("bits", 300, True),
            cand("low-rank", 400, True)]
    scored = []
    best = choose(grid, lambda c: scored.append(c.bits) or {500: 0.9, 400: 0.95}[c.bits], "b")
    assert sorted(scored) == [400, 500] and best.bits == 400
    with pytest.raises(BadInput, match=r"no configuration fits b: the smallest \(int300\) "
                                       r"needs 0\.0 KB"):
        choose([cand("bits", 300, False)], lambda c: 0.0, "b")
