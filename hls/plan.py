"""Fold one layer onto the engine: PE x SIMD, memory, cycle counts, fit and overflow proofs.

The whole-model plan (one engine time-multiplexed over every layer) is in `hls.program`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from vitfpga.errors import BadInput, DoesNotFit
from vitfpga.hls.boards import Board
from vitfpga.hls.memory import map_memory
from vitfpga.hls.names import identifier
from vitfpga.ir import ACC_LIMIT, IntLinear

__all__ = ["EnginePlan", "check_plan_matches", "estimate_resources", "plan_layer"]


@dataclass(frozen=True)
class EnginePlan:
    board: str
    part: str
    clock_mhz: float
    layer: str  # the model's name for the layer, never emitted as-is
    ident: str  # sanitised identifier used in generated code
    k: int
    n: int
    rows: int  # token rows per image (M)
    pe: int
    simd: int
    weight_bits: int
    bram36: float
    uram: int
    dsp: int
    lut: int
    bram_efficiency: float

    @property
    def sf(self) -> int:
        return self.k // self.simd

    @property
    def nf(self) -> int:
        return self.n // self.pe

    @property
    def word_bits(self) -> int:
        return self.pe * self.simd * self.weight_bits

    @property
    def weight_depth(self) -> int:
        return self.nf * self.sf

    def ideal_cycles(self, rows: int) -> int:
        return rows * math.ceil(self.n / self.pe) * math.ceil(self.k / self.simd)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EnginePlan:
        return cls(**json.loads(text))


def check_plan_matches(plan: EnginePlan, layer: IntLinear) -> None:
    """Emitters refuse a plan made for another layer or a folding that does not divide."""
    if (plan.k, plan.n, plan.weight_bits) != (layer.k, layer.n, layer.weight_bits):
        raise BadInput(
            f"plan for {plan.ident} is {plan.k}x{plan.n} at {plan.weight_bits} bits, but the "
            f"layer is {layer.k}x{layer.n} at {layer.weight_bits} bits")
    if plan.k % plan.simd or plan.n % plan.pe:
        raise BadInput(f"plan for {plan.ident}: PE={plan.pe}, SIMD={plan.simd} do not divide "
                       f"N={plan.n}, K={plan.k}")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def estimate_resources(pe: int, simd: int, bits: int) -> tuple[int, int]:
    """(DSP, LUT) estimates for a PE x SIMD array.

    Low-bit weights multiply in LUTs (a 4x8 product is a few LUTs; DSP48s would waste most of
    their width); 8-bit weights take one DSP per lane. The 32x31-bit requant product takes four
    DSP48 slices per PE. LUTs: a per-lane MAC cost plus adder trees, control and AXI glue.
    """
    lanes = pe * simd
    dsp = 4 * pe + (lanes if bits == 8 else 0)
    lut_per_lane = 8 if bits == 8 else 2 * (bits + 8)
    return dsp, lanes * lut_per_lane + pe * (32 + 64) + 800


def plan_layer(layer: IntLinear, board: Board, rows: int, max_lanes: int = 64) -> EnginePlan:
    """Pick PE | N and SIMD | K with the most MAC lanes the board's budget allows; among equals,
    the fewest BRAM36, then the wider SIMD (fewer, wider input beats)."""
    bound = layer.acc_bound()
    if bound >= ACC_LIMIT:
        raise DoesNotFit(f"layer {layer.name}: worst-case accumulator {bound} >= 2^31")
    candidates = []
    for pe in _divisors(layer.n):
        for simd in _divisors(layer.k):
            lanes = pe * simd
            dsp, lut = estimate_resources(pe, simd, layer.weight_bits)
            if lanes > max_lanes or dsp > board.dsp or lut > board.lut:
                continue
            mem = map_memory(lanes * layer.weight_bits, (layer.n // pe) * (layer.k // simd),
                             uram_limit=board.uram)
            candidates.append((-lanes, mem.bram36 + 8 * mem.uram, -simd, pe, simd, mem, dsp, lut))
    if not candidates:
        raise DoesNotFit(f"layer {layer.name} ({layer.k}x{layer.n}) has no folding within "
                         f"{board.name}'s {board.dsp} DSP and {board.lut} LUT")
    *_, pe, simd, mem, dsp, lut = min(candidates)
    if mem.bram36 > board.bram36 or mem.uram > board.uram:
        raise DoesNotFit(f"layer {layer.name} needs {mem.bram36} BRAM36 and {mem.uram} URAM, "
                         f"{board.name} has {board.bram36} and {board.uram}; "
                         f"try fewer --weight-bits")
    return EnginePlan(board=board.name, part=board.part, clock_mhz=board.clock_mhz,
                      layer=layer.name, ident=identifier(layer.name), k=layer.k, n=layer.n,
                      rows=rows, pe=pe, simd=simd, weight_bits=layer.weight_bits,
                      bram36=mem.bram36, uram=mem.uram, dsp=dsp, lut=lut,
                      bram_efficiency=round(mem.efficiency, 4))
