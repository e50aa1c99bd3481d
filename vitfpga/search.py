"""`vitfpga compress --budget-kb N | --board NAME`: the most accurate compression that fits.

Sizes and board fits are functions of a candidate's form (bits, ranks, sparsity), so every
candidate of a small grid is priced without training: its size in real bits (quant.size: each
layer in the codec the engine stores it in; an upper bound where export finds a layer with few
enough distinct values for a cheaper codebook) and, for a board, the plan of the encoded engine
(hls.plan: BRAM, URAM, DSP, LUT of the weight streams and their decoders) on seeded stand-in
weights of those shapes, shaped by the candidate's N:M pattern and encoded as export encodes.
Accuracy is what needs training: the largest fitting candidate of each family
(plain bits, pruning, low-rank, shared decoders) gets a short QAT and is scored on a validation
split carved from the training images; the winner is then trained in full by the caller.
Only low-rank ranks need the trained teacher (its spectra); before training, `refuse_early`
prices every candidate from the shapes alone, low-rank by a lower bound, so a budget nothing
can meet is refused before the teacher trains.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from vitfpga.errors import BadInput, DoesNotFit
from vitfpga.hls.plan.boards import Board
from vitfpga.hls.plan.engine import plan_model
from vitfpga.ir import IntLinear, encode_layers
from vitfpga.quant.codecs import SUPPORTED_BITS, nm_prune
from vitfpga.quant.compress import base_structure
from vitfpga.quant.model import ViTConfig, linear_shapes
from vitfpga.quant.recipe import CompressionRecipe, LowRank, Prune, uniform_ranks
from vitfpga.quant.size import TABLE_BITS
from vitfpga.quant.structure import SlotSpec, Structure, layer_type
from vitfpga.quant.synthetic import structure_layers

__all__ = ["Candidate", "bits_floor", "candidates", "choose", "predicted_bits", "price",
           "refuse_early", "stand_ins"]


@dataclass
class Candidate:
    family: str
    recipe: CompressionRecipe
    bits: int = 0  # predicted whole-model bits
    fits: bool = False
    why: str = ""  # why it does not fit, or what it costs
    val_accuracy: float | None = None

    @property
    def label(self) -> str:
        return self.recipe.label


def candidates(base: CompressionRecipe, model_cfg: ViTConfig) -> list[Candidate]:
    """The grid, least compressed first within each family."""
    plain = dataclasses.replace(base, prune=Prune.NONE, lowrank=LowRank.NONE,
                                shared_ranks=uniform_ranks(0), layer_bits=())
    out = [Candidate("bits", dataclasses.replace(plain, weight_bits=b))
           for b in sorted(SUPPORTED_BITS, reverse=True)]
    for b in (4, 3):
        out.append(Candidate("pruning", dataclasses.replace(plain, weight_bits=b, prune=Prune.NM,
                                                            prune_nm=(2, 4))))
    for b in (4, 3):
        for keep in (0.6, 0.4, 0.25):
            out.append(Candidate("low-rank", dataclasses.replace(
                plain, weight_bits=b, lowrank=LowRank.AWARE, lowrank_keep=keep)))
    smallest = min(min(k, n) for s, k, n, _ in linear_shapes(model_cfg) if layer_type(s))
    for b in (4, 3):
        for rank in sorted({max(1, smallest // 2), max(1, smallest // 4)}, reverse=True):
            out.append(Candidate("shared decoders", dataclasses.replace(
                plain, weight_bits=b, shared_ranks=uniform_ranks(rank))))
    return out


def predicted_bits(structure: Structure, model_cfg: ViTConfig, recipe: CompressionRecipe,
                   host_bits: int) -> int:
    """Whole-model bits of a candidate, as quant.size counts the exported model: weights under
    their codec (a shared decoder once), per-channel tables, host parameters."""
    total = host_bits
    decoders: set[str] = set()
    for slot, k, n, _ in linear_shapes(model_cfg):
        spec = structure[slot]
        kind = layer_type(slot) or slot
        total += _slot_bits(slot, k, n, spec, recipe,
                            decoder=not (spec.shared and kind in decoders))
        if spec.factored:
            decoders.add(kind)
    return total


def _slot_bits(slot: str, k: int, n: int, spec: SlotSpec, recipe: CompressionRecipe,
               decoder: bool = True) -> int:
    """One slot's weights under their codec and its per-channel tables (`decoder`: count V,
    which a shared decoder stores once for all blocks)."""
    if not spec.factored:
        dense = k * n * spec.bits
        n_keep, m = recipe.prune_nm
        # Unstructured sparsity saves nothing on chip (the engine has no bitmap decoder): such
        # layers are stored dense. N:M layers store N values and positions per group.
        if recipe.prune == Prune.NM and layer_type(slot):
            pos = max(1, math.ceil(math.log2(m)))
            dense = min(dense, n * math.ceil(k / m) * n_keep * (spec.bits + pos))
        return dense + n * TABLE_BITS
    weights = spec.rank * k * spec.bits + (spec.rank * n * spec.decoder_bits if decoder else 0)
    channels = spec.rank + n
    if spec.sparse:  # the sparse term S is stored dense on chip, as above
        weights += k * n * spec.bits
        channels += n
    return weights + channels * TABLE_BITS


def bits_floor(recipe: CompressionRecipe, model_cfg: ViTConfig, host_bits: int
               ) -> tuple[int, bool]:
    """(bits, exact) of a candidate from the shapes alone, before any teacher exists. Exact
    unless it is low-rank, whose ranks follow from the teacher's spectra: then a true lower
    bound, every block slot at the cheaper of dense and rank 1 (the rank allocation starts
    every slot at rank 1, a cost that only grows with the rank, and a slot it turns dense
    costs its dense bits)."""
    base = base_structure(recipe, model_cfg)
    if recipe.lowrank == LowRank.NONE:
        return predicted_bits(base, model_cfg, recipe, host_bits), True
    total = host_bits
    for slot, k, n, _ in linear_shapes(model_cfg):
        cost = _slot_bits(slot, k, n, base[slot], recipe)
        if layer_type(slot):
            rank1 = dataclasses.replace(base[slot], rank=1, sparse=recipe.lowrank_sparse > 0)
            cost = min(cost, _slot_bits(slot, k, n, rank1, recipe))
        total += cost
    return total, False


def refuse_early(cands: list[Candidate], model_cfg: ViTConfig, host_bits: int,
                 budget_bits: int, describe_budget: str) -> None:
    """BadInput, before any training, when even the smallest candidate's floor is over the
    budget (a candidate between its floor and the budget is refused by `choose`, after)."""
    floors = [(*bits_floor(c.recipe, model_cfg, host_bits), -i) for i, c in enumerate(cands)]
    bits, exact, at = min(floors, key=lambda f: (f[0], f[2]))  # ties: the more compressed
    if bits > budget_bits:
        raise BadInput(f"no configuration fits {describe_budget}: the smallest "
                       f"({cands[-at].label}) needs {'' if exact else 'at least '}"
                       f"{bits / 8 / 1024:.1f} KB ({(bits - budget_bits) / 8 / 1024:.1f} KB "
                       f"over)")


def stand_ins(recipe: CompressionRecipe, structure: Structure, model_cfg: ViTConfig
              ) -> tuple[dict[str, IntLinear], dict[str, int]]:
    """(layers, rows) to plan a candidate on: a fit depends on shapes, bits, sharing and codecs,
    not on the values, so seeded weights shaped like the candidate's (its N:M pattern on the
    block layers, as the pruner leaves them) and encoded as export encodes will do."""
    layers, rows = structure_layers(structure, model_cfg)
    if recipe.prune == Prune.NM:
        n_keep, m = recipe.prune_nm
        layers = {name: dataclasses.replace(layer, weight=nm_prune(layer.weight, n_keep, m))
                  if layer_type(name) else layer for name, layer in layers.items()}
    return encode_layers(layers), rows


def price(candidate: Candidate, structure: Structure, model_cfg: ViTConfig, host_bits: int,
          budget_bits: int | None, board: Board | None) -> None:
    candidate.bits = predicted_bits(structure, model_cfg, candidate.recipe, host_bits)
    kb = candidate.bits / 8 / 1024
    if budget_bits is not None:
        candidate.fits = candidate.bits <= budget_bits
        over = (candidate.bits - budget_bits) / 8 / 1024
        candidate.why = f"{kb:.1f} KB" if candidate.fits else f"{over:.1f} KB over"
        return
    assert board is not None
    layers, rows = stand_ins(candidate.recipe, structure, model_cfg)
    try:
        plan = plan_model(layers, rows, board)
    except DoesNotFit as e:
        candidate.fits, candidate.why = False, str(e).split(";")[0]
        return
    candidate.fits = True
    candidate.why = (f"{kb:.1f} KB; PE{plan.pe} x SIMD{plan.simd}, {plan.bram36:g} BRAM36, "
                     f"{plan.uram} URAM, {plan.dsp} DSP, {plan.lut:,} LUT")


def choose(cands: list[Candidate], score: Callable[[Candidate], float],
           describe_budget: str) -> Candidate:
    """Score the least compressed fitting candidate of each family; the best score wins, ties
    to the larger model. `score` trains briefly and returns validation accuracy."""
    fitting = [c for c in cands if c.fits]
    if not fitting:
        smallest = min(cands, key=lambda c: c.bits)
        raise BadInput(f"no configuration fits {describe_budget}: the smallest "
                       f"({smallest.label}) needs {smallest.bits / 8 / 1024:.1f} KB"
                       f"{'' if smallest.fits else ' (' + smallest.why + ')'}")
    finalists: dict[str, Candidate] = {}
    for c in fitting:
        best = finalists.get(c.family)
        if best is None or c.bits > best.bits:
            finalists[c.family] = c
    for c in finalists.values():
        c.val_accuracy = score(c)
    return max(finalists.values(), key=lambda c: (c.val_accuracy or 0.0, c.bits))
