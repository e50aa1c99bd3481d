"""Fold the whole model onto one engine: PE x SIMD, one weight memory, a program, fit proofs.

One instruction per linear layer; every layer runs on the same PE x SIMD array, zero-padded to
whole folds (hls.layout), and every weight sits in one on-chip memory.

A plan is plain frozen data, saved as JSON; the same inputs give the same plan, byte for byte.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from vitfpga.errors import BadInput, DoesNotFit
from vitfpga.hls.boards import Board
from vitfpga.hls.memory import MemoryMap, map_memory
from vitfpga.hls.names import unique_identifiers
from vitfpga.hls.plan import estimate_resources
from vitfpga.ir import ACC_LIMIT, IntLinear

__all__ = ["LayerSlot", "ModelPlan", "check_model_plan", "plan_model"]

# Part of the block RAM kept for activation buffers, FIFOs and the tables beside the weights.
BRAM_RESERVE = 0.10
LUT_BUDGET = 0.70  # routing and the rest of the design need the remainder
MIN_MAC_UTILISATION = 0.95


@dataclass(frozen=True)
class LayerSlot:
    """One program entry: a linear layer on the engine."""

    name: str  # the model's name, never emitted as-is
    ident: str  # sanitised, unique identifier for generated code
    k: int
    n: int
    sf: int  # input folds: K padded to sf*SIMD
    nf: int  # output folds: N padded to nf*PE
    rows: int  # rows per image (tokens this layer sees)
    w_base: int  # first weight word
    c_base: int  # first per-channel table word
    relu: bool

    @property
    def words(self) -> int:
        return self.nf * self.sf

    def ideal_cycles(self, rows: int) -> int:
        return rows * self.nf * self.sf


@dataclass(frozen=True)
class ModelPlan:
    board: str
    part: str
    clock_mhz: float
    pe: int
    simd: int
    weight_bits: int
    layers: tuple[LayerSlot, ...]
    weight_depth: int
    channel_depth: int
    bram36: float
    uram: int
    dsp: int
    lut: int
    bram_efficiency: float

    @property
    def word_bits(self) -> int:
        return self.pe * self.simd * self.weight_bits

    @property
    def max_sf(self) -> int:
        return max(s.sf for s in self.layers)

    @property
    def cycles_per_image(self) -> int:
        return sum(s.ideal_cycles(s.rows) for s in self.layers)

    @property
    def mac_utilisation(self) -> float:
        """True MACs / (lanes x ideal cycles): what padding to whole folds costs."""
        macs = sum(s.rows * s.k * s.n for s in self.layers)
        return macs / (self.pe * self.simd * self.cycles_per_image)

    def slot(self, name: str) -> LayerSlot:
        for s in self.layers:
            if s.name == name:
                return s
        raise BadInput(f"layer '{name}' is not in the plan; planned: "
                       f"{', '.join(s.name for s in self.layers)}")

    def index(self, name: str) -> int:
        return self.layers.index(self.slot(name))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelPlan:
        data = json.loads(text)
        data["layers"] = tuple(LayerSlot(**s) for s in data["layers"])
        return cls(**data)


def check_model_plan(plan: ModelPlan, layers: dict[str, IntLinear]) -> None:
    """Emitters refuse a plan made for other layers."""
    for s in plan.layers:
        layer = layers.get(s.name)
        if layer is None:
            raise BadInput(f"the plan has layer {s.ident} that the model lacks")
        if (s.k, s.n) != (layer.k, layer.n) or layer.weight_bits > plan.weight_bits:
            raise BadInput(f"plan for {s.ident} is {s.k}x{s.n} at {plan.weight_bits} bits, but "
                           f"the layer is {layer.k}x{layer.n} at {layer.weight_bits} bits")
        if s.sf * plan.simd < s.k or s.nf * plan.pe < s.n:
            raise BadInput(f"plan for {s.ident}: folds do not cover {s.n}x{s.k}")


def _slots(layers: dict[str, IntLinear], rows: dict[str, int], pe: int,
           simd: int) -> tuple[LayerSlot, ...]:
    idents = unique_identifiers(layers)
    slots, w_base, c_base = [], 0, 0
    for name, layer in layers.items():
        sf, nf = math.ceil(layer.k / simd), math.ceil(layer.n / pe)
        slots.append(LayerSlot(name=name, ident=idents[name], k=layer.k, n=layer.n, sf=sf, nf=nf,
                               rows=rows[name], w_base=w_base, c_base=c_base, relu=layer.relu))
        w_base += sf * nf
        c_base += nf
    return tuple(slots)


def _folds(dims: list[int], cap: int) -> list[int]:
    """Candidate fold sizes: powers of two and divisors of the layer dimensions, up to cap."""
    found = {2**i for i in range(cap.bit_length()) if 2**i <= cap}
    for d in dims:
        found |= {f for f in range(1, min(d, cap) + 1) if d % f == 0}
    return sorted(found)


def plan_model(layers: dict[str, IntLinear], rows: dict[str, int], board: Board,
               max_lanes: int = 64) -> ModelPlan:
    """The fastest folding whose weights, DSPs and LUTs fit the board.

    Among foldings with at least 95% MAC utilisation (when any has), the fewest cycles per image
    win; ties go to fewer BRAM, then wider SIMD. Raises DoesNotFit with the numbers otherwise.
    """
    if not layers:
        raise BadInput("the model has no linear layers to plan")
    for layer in layers.values():
        bound = layer.acc_bound()
        if bound >= ACC_LIMIT:
            raise DoesNotFit(f"layer {layer.name}: worst-case accumulator {bound} overflows int32 "
                             f"(K={layer.k}); use fewer weight bits or split the layer")
    bits = max(layer.weight_bits for layer in layers.values())
    bram_budget = board.bram36 * (1 - BRAM_RESERVE)
    candidates, smallest = [], None
    for pe in _folds([lay.n for lay in layers.values()], max_lanes):
        for simd in _folds([lay.k for lay in layers.values()], max_lanes // pe):
            dsp, lut = estimate_resources(pe, simd, bits)
            if dsp > board.dsp or lut > board.lut * LUT_BUDGET:
                continue
            slots = _slots(layers, rows, pe, simd)
            depth = sum(s.words for s in slots)
            mem = map_memory(pe * simd * bits, depth, uram_limit=board.uram)
            if smallest is None or mem.bram36 < smallest[0].bram36:
                smallest = (mem, pe, simd)
            if mem.bram36 > bram_budget or mem.uram > board.uram:
                continue
            plan = _plan(board, pe, simd, bits, slots, mem, dsp, lut)
            candidates.append(plan)
    if not candidates:
        if smallest is None:
            raise DoesNotFit(f"no PE x SIMD folding fits {board.name}'s {board.dsp} DSP and "
                             f"{int(board.lut * LUT_BUDGET)} usable LUT")
        mem = smallest[0]
        raise DoesNotFit(
            f"the weights need {mem.bram36:g} BRAM36 and {mem.uram} URAM at best, {board.name} "
            f"offers {bram_budget:g} BRAM36 (90% of {board.bram36}) and {board.uram} URAM; "
            f"try fewer weight bits, low-rank layers or a larger board")
    good = [p for p in candidates if p.mac_utilisation >= MIN_MAC_UTILISATION] or candidates
    return min(good, key=lambda p: (p.cycles_per_image, p.bram36, -p.simd))


def _plan(board: Board, pe: int, simd: int, bits: int, slots: tuple[LayerSlot, ...],
          mem: MemoryMap, dsp: int, lut: int) -> ModelPlan:
    return ModelPlan(board=board.name, part=board.part, clock_mhz=board.clock_mhz, pe=pe,
                     simd=simd, weight_bits=bits, layers=slots, weight_depth=mem.depth,
                     channel_depth=sum(s.nf for s in slots), bram36=mem.bram36, uram=mem.uram,
                     dsp=dsp, lut=lut, bram_efficiency=round(mem.efficiency, 4))

