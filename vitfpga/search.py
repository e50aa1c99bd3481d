"""`vitfpga compress --budget-kb N | --board NAME`: the most accurate compression that fits.

Sizes and board fits are exact functions of a candidate's form (bits, ranks, sparsity), so every
candidate of a small grid is priced without training: its size in real bits (quant.size) and,
for a board, the engine plan of its integer-layer shapes (hls.plan, on seeded stand-in weights
of those shapes). Accuracy is what needs training: the largest fitting candidate of each family
(plain bits, pruning, low-rank, shared decoders) gets a short QAT and is scored on a validation
split carved from the training images; the winner is then trained in full by the caller.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from vitfpga.config import RunConfig
from vitfpga.errors import BadInput, DoesNotFit
from vitfpga.hls.plan.boards import Board
from vitfpga.hls.plan.engine import plan_model
from vitfpga.quant.codecs import SUPPORTED_BITS, nonzero_bits
from vitfpga.quant.model import ViTConfig, linear_shapes
from vitfpga.quant.size import TABLE_BITS
from vitfpga.quant.structure import Structure, layer_type
from vitfpga.quant.synthetic import structure_layers

__all__ = ["Candidate", "candidates", "choose", "predicted_bits", "price"]


@dataclass
class Candidate:
    family: str
    cfg: RunConfig
    bits: int = 0  # predicted whole-model bits
    fits: bool = False
    why: str = ""  # why it does not fit, or what it costs
    val_accuracy: float | None = None

    @property
    def label(self) -> str:
        c = self.cfg
        parts = [f"int{c.weight_bits}"]
        if c.prune != "none":
            parts.append(f"{c.prune_nm} sparse" if c.prune == "nm"
                         else f"{c.prune} {c.prune_sparsity:.0%} pruned")
        if c.lowrank != "none":
            parts.append(f"{c.lowrank} low-rank keeping {c.lowrank_keep:.0%}")
        if c.shared_rank:
            parts.append(f"shared decoders rank {c.shared_rank}")
        return ", ".join(parts)


def candidates(base: RunConfig, model_cfg: ViTConfig) -> list[Candidate]:
    """The grid, least compressed first within each family."""
    plain = dataclasses.replace(base, prune="none", lowrank="none", shared_rank=0,
                                shared_type_ranks=(),
                                layer_bits=())
    out = [Candidate("bits", dataclasses.replace(plain, weight_bits=b))
           for b in sorted(SUPPORTED_BITS, reverse=True)]
    for b in (4, 3):
        out.append(Candidate("pruning", dataclasses.replace(plain, weight_bits=b, prune="nm",
                                                            prune_nm="2:4")))
    for sparsity in (0.5, 0.7):  # ternary weights: a non-zero costs its presence bit and a sign
        out.append(Candidate("pruning", dataclasses.replace(
            plain, weight_bits=2, prune="magnitude", prune_sparsity=sparsity)))
    for b in (4, 3):
        for keep in (0.6, 0.4, 0.25):
            out.append(Candidate("low-rank", dataclasses.replace(
                plain, weight_bits=b, lowrank="aware", lowrank_keep=keep)))
    smallest = min(min(k, n) for s, k, n, _ in linear_shapes(model_cfg) if layer_type(s))
    for b in (4, 3):
        for rank in sorted({max(1, smallest // 2), max(1, smallest // 4)}, reverse=True):
            out.append(Candidate("shared decoders", dataclasses.replace(
                plain, weight_bits=b, shared_rank=rank)))
    return out


def predicted_bits(structure: Structure, model_cfg: ViTConfig, cfg: RunConfig,
                   host_bits: int) -> int:
    """Whole-model bits of a candidate, as quant.size counts the exported model: weights under
    their codec (a shared decoder once), per-channel tables, host parameters."""
    n_keep, m = cfg.nm
    weights = channels = 0
    decoders: set[str] = set()
    for slot, k, n, _ in linear_shapes(model_cfg):
        spec = structure[slot]
        if not spec.factored:
            dense = k * n * spec.bits
            if cfg.prune == "nm" and layer_type(slot) and k % m == 0:
                pos = max(1, math.ceil(math.log2(m)))
                dense = min(dense, k * n * n_keep // m * (spec.bits + pos))
            elif cfg.prune == "magnitude" and layer_type(slot):
                kept = round(k * n * (1 - cfg.prune_sparsity))
                dense = min(dense, k * n + kept * nonzero_bits(spec.bits))
            weights += dense
            channels += n
            continue
        weights += spec.rank * k * spec.bits
        kind = layer_type(slot) or slot
        if not (spec.shared and kind in decoders):
            weights += spec.rank * n * spec.decoder_bits
            decoders.add(kind)
        channels += spec.rank + n
        if spec.sparse:
            weights += k * n + round(k * n * cfg.lowrank_sparse) * nonzero_bits(spec.bits)
            channels += n
    return weights + channels * TABLE_BITS + host_bits


def price(candidate: Candidate, structure: Structure, model_cfg: ViTConfig, host_bits: int,
          budget_bits: int | None, board: Board | None) -> None:
    candidate.bits = predicted_bits(structure, model_cfg, candidate.cfg, host_bits)
    kb = candidate.bits / 8 / 1024
    if budget_bits is not None:
        candidate.fits = candidate.bits <= budget_bits
        over = (candidate.bits - budget_bits) / 8 / 1024
        candidate.why = f"{kb:.1f} KB" if candidate.fits else f"{over:.1f} KB over"
        return
    assert board is not None
    # A fit depends on shapes, bits and sharing, not on the values: seeded stand-ins will do.
    layers, rows = structure_layers(structure, model_cfg)
    try:
        plan = plan_model(layers, rows, board)
    except DoesNotFit as e:
        candidate.fits, candidate.why = False, str(e).split(";")[0]
        return
    candidate.fits = True
    candidate.why = (f"{kb:.1f} KB; PE{plan.pe} x SIMD{plan.simd}, {plan.bram36:g} BRAM36, "
                     f"{plan.uram} URAM")


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
