"""Fold the whole model onto one engine: PE x SIMD, one weight memory, a program, fit proofs.

One instruction per linear layer; every layer runs on the same PE x SIMD array, zero-padded to
whole folds (hls.layout), and every weight sits in one on-chip memory.

Memories are counted as synthesis builds them (`map_memory(..., rom=True)`, checked against
Yosys): the weight ROM, the bias / multiplier / shift tables and the input row buffer. Weights
sit in a block-RAM ROM loaded with the bitstream; when that does not fit, trailing words move to
URAM288, which the host loads once at start-up (URAM cannot be initialised on UltraScale+).

A plan is plain frozen data, saved as JSON; the same inputs give the same plan, byte for byte.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from vitfpga.errors import BadInput, DoesNotFit
from vitfpga.hls.plan.boards import Board
from vitfpga.hls.plan.layout import CHANNEL_PAD, layer_codec
from vitfpga.hls.plan.memory import BRAM36_BITS, URAM288_BITS, URAM288_SHAPE, MemoryMap, map_memory
from vitfpga.hls.plan.names import unique_identifiers
from vitfpga.ir import ACC_LIMIT, IntLinear, weight_owners

__all__ = ["LayerSlot", "ModelPlan", "check_model_plan", "estimate_resources", "fixed_plan",
           "folds", "lane_bits", "plan_model"]

# Part of the block RAM kept for the rest of the system (DMA buffers, interconnect FIFOs).
BRAM_RESERVE = 0.10
_LUTRAM_MAX_DEPTH = 64  # a row buffer this shallow is distributed RAM (RAM32M/RAM64M)
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
    # Weight words [0, rom_depth) are a ROM initialised with the bitstream (block RAM); words
    # [rom_depth, weight_depth) sit in a RAM (URAM288 on UltraScale+) that the host loads once
    # at start-up (docs/engine.md, weight load), because URAM cannot be initialised.
    rom_depth: int
    channel_depth: int
    bram36: float  # everything: weight ROM, per-channel tables, input row buffer
    weight_bram36: float
    uram: int
    dsp: int
    lut: int  # estimate: MAC array, requant, control, and memories built from LUTs
    bram_efficiency: float  # weight bits / bits of the block RAM the weight ROM occupies

    @property
    def word_bits(self) -> int:
        return self.pe * self.simd * self.weight_bits

    @property
    def ram_depth(self) -> int:
        """Weight words the host must load before the first run (0: none)."""
        return self.weight_depth - self.rom_depth

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


def _slots(layers: dict[str, IntLinear], rows: dict[str, int], pe: int, simd: int,
           owners: dict[str, str]) -> tuple[LayerSlot, ...]:
    """Program entries in model order. Layers sharing a weight owner (`ir.weight_owners`, found
    once per model, not per folding) read one copy: the weight memory holds it once, each keeps
    its own tables."""
    idents = unique_identifiers(layers)
    slots, w_base, c_base = [], 0, 0
    bases: dict[str, int] = {}
    for name, layer in layers.items():
        sf, nf = math.ceil(layer.k / simd), math.ceil(layer.n / pe)
        base = bases.setdefault(owners[name], w_base)
        slots.append(LayerSlot(name=name, ident=idents[name], k=layer.k, n=layer.n, sf=sf, nf=nf,
                               rows=rows[name], w_base=base, c_base=c_base, relu=layer.relu))
        if base == w_base:
            w_base += layer_codec(layer).words(layer.k, layer.n, pe, simd)
        c_base += nf
    return tuple(slots)


def lane_bits(layers: dict[str, IntLinear]) -> int:
    """Weight lane bits of the shared memory: the widest any layer's codec needs (narrower
    layers sit sign-extended in it)."""
    return max(layer_codec(layer).lane_bits for layer in layers.values())


def _weight_depth(slots: tuple[LayerSlot, ...]) -> int:
    return max(s.w_base + s.words for s in slots)


def folds(cap: int) -> list[int]:
    """Candidate fold sizes: powers of two up to cap. The engine's streams are SIMD x 8 and
    PE x 8 bits wide and an AXI DMA (the PYNQ project's data mover) streams only 8 x 2^k bits;
    zero-padding to the next power of two costs less than the width converters a
    three-lane stream would need."""
    return [2**i for i in range(cap.bit_length()) if 2**i <= cap]


# LUTs of one lane's product in vitfpga_lutmul (Yosys synth_xilinx, xc7), by weight bits; 8-bit
# weights multiply in a DSP48.
_LUTMUL_LUTS = {2: 17, 3: 28, 4: 42, 8: 0}
# Calibrated on Yosys synth_xilinx of emitted engines (digits PE16 x SIMD4, PE2 x SIMD8, a DeiT-
# Tiny block at PE4 x SIMD8; within ~10%): per lane, the adder tree and product register; per
# PE, accumulator, 64-bit round/shift/clamp and its registers; once, AXI-Lite and control.
_LANE_LUTS, _PE_LUTS, _BASE_LUTS = 25, 230, 600


def estimate_resources(pe: int, simd: int, bits: int) -> tuple[int, int]:
    """(DSP, LUT) estimates for a PE x SIMD array, without its memories.

    Low-bit weights multiply in LUTs (vitfpga_lutmul: DSP48s would waste most of their width);
    8-bit weights take one DSP per lane. The 32x31-bit requant product takes four DSP48 slices per
    PE.
    """
    lanes = pe * simd
    dsp = 4 * pe + (lanes if bits == 8 else 0)
    lut = lanes * (_LUTMUL_LUTS[bits] + _LANE_LUTS) + pe * _PE_LUTS + _BASE_LUTS
    return dsp, lut


@dataclass(frozen=True)
class Memories:
    weights: MemoryMap  # the ROM part, as synthesis maps it
    uram: int  # URAM288 blocks of the loadable part
    weight_bits: int  # bits of every weight word, both parts
    others: tuple[MemoryMap, ...]  # bias, multiplier, shift tables; input row buffer

    @property
    def bram36(self) -> float:
        return self.weights.bram36 + sum(m.bram36 for m in self.others)

    @property
    def luts(self) -> int:
        return self.weights.luts + sum(m.luts for m in self.others)

    @property
    def weight_efficiency(self) -> float:
        """Weight bits / bits of the block RAM and URAM they occupy (1.0 if in LUTs only)."""
        capacity = self.weights.bram18 * BRAM36_BITS // 2 + self.uram * URAM288_BITS
        return self.weight_bits / capacity if capacity else 1.0


def engine_memories(pe: int, simd: int, bits: int, rom_depth: int, ram_depth: int,
                    channel_depth: int, max_sf: int) -> Memories:
    """Every memory of the engine as synthesis maps it (vitfpga_mvu.v's arrays)."""
    width = pe * simd * bits
    weights = (map_memory(width, rom_depth, rom=True) if rom_depth
               else MemoryMap(width, 0, 0, 0, (), logic=True))
    uram = math.ceil(width / URAM288_SHAPE[0]) * math.ceil(ram_depth / URAM288_SHAPE[1])
    tables = tuple(map_memory(pe * lane_bits, channel_depth, rom=True)
                   for lane_bits, _ in CHANNEL_PAD.values())
    # Two banks of 2^ceil(log2(max SF)) beats (vitfpga_mvu.v pads each bank to a power of two).
    depth = 2 << max(1, (max_sf - 1).bit_length())
    if depth <= _LUTRAM_MAX_DEPTH:
        row_buffer = MemoryMap(simd * 8, depth, 0, 0, (), luts=math.ceil(simd * 8 / 6) * 2,
                               logic=True)
    else:
        row_buffer = map_memory(simd * 8, depth)
    return Memories(weights, uram if ram_depth else 0, width * (rom_depth + ram_depth),
                    (*tables, row_buffer))


def _split(board: Board, pe: int, simd: int, bits: int, weight_depth: int, channel_depth: int,
           max_sf: int) -> tuple[int, Memories]:
    """(rom_depth, memories): all weights in the ROM when that fits the block RAM budget, else
    the fewest whole URAM288 rows of trailing words that make it fit (or all the board has)."""
    def memories(rom_depth: int) -> Memories:
        return engine_memories(pe, simd, bits, rom_depth, weight_depth - rom_depth,
                               channel_depth, max_sf)

    best = (weight_depth, memories(weight_depth))
    per_row = math.ceil(pe * simd * bits / URAM288_SHAPE[0])
    budget = board.bram36 * (1 - BRAM_RESERVE)
    for rows in range(1, board.uram // per_row + 1):
        if best[1].bram36 <= budget or best[0] == 0:
            break
        rom_depth = max(0, weight_depth - rows * URAM288_SHAPE[1])
        best = (rom_depth, memories(rom_depth))
    return best


def plan_model(layers: dict[str, IntLinear], rows: dict[str, int], board: Board,
               max_lanes: int = 64) -> ModelPlan:
    """The fastest folding whose weights, DSPs and LUTs fit the board.

    Among foldings with at least 95% MAC utilisation (when any has), the fewest cycles per image
    win; ties go to fewer BRAM, then wider SIMD. Raises DoesNotFit with the numbers otherwise.
    """
    if not layers:
        raise BadInput("the model has no linear layers to plan")
    _check_overflow(layers)
    bits = lane_bits(layers)
    bram_budget = board.bram36 * (1 - BRAM_RESERVE)
    candidates, smallest = [], None
    owners = weight_owners(layers)
    for pe in folds(max_lanes):
        for simd in folds(max_lanes // pe):
            dsp, _ = estimate_resources(pe, simd, bits)
            if dsp > board.dsp:
                continue
            plan = _plan(board, pe, simd, bits, _slots(layers, rows, pe, simd, owners))
            if smallest is None or plan.bram36 < smallest.bram36:
                smallest = plan
            if plan.bram36 > bram_budget or plan.lut > board.lut * LUT_BUDGET:
                continue
            candidates.append(plan)
    if not candidates:
        if smallest is None:
            raise DoesNotFit(f"no PE x SIMD folding fits {board.name}'s {board.dsp} DSP")
        uram = (f" with {smallest.uram} of its {board.uram} URAM holding weights"
                if board.uram else "")
        raise DoesNotFit(
            f"the engine needs {smallest.bram36:g} BRAM36 at best{uram}, {board.name} offers "
            f"{bram_budget:g} BRAM36 (90% of {board.bram36}); try fewer weight bits, "
            f"low-rank layers or a larger board")
    good = [p for p in candidates if p.mac_utilisation >= MIN_MAC_UTILISATION] or candidates
    return min(good, key=lambda p: (p.cycles_per_image, p.bram36, -p.simd))


def fixed_plan(layers: dict[str, IntLinear], rows: dict[str, int], board: Board, pe: int,
               simd: int, rom_depth: int | None = None) -> ModelPlan:
    """The plan for a chosen PE x SIMD, and optionally a chosen ROM/RAM split of the weights
    (kernel tests, and users who fold by hand); checks the overflow proof but not the board's
    budgets."""
    if not layers:
        raise BadInput("the model has no linear layers to plan")
    if pe < 1 or simd < 1:
        raise BadInput(f"PE and SIMD must be positive, got {pe} and {simd}")
    _check_overflow(layers)
    bits = lane_bits(layers)
    slots = _slots(layers, rows, pe, simd, weight_owners(layers))
    if rom_depth is not None and not 0 <= rom_depth <= _weight_depth(slots):
        raise BadInput(f"rom_depth {rom_depth} is outside the weight memory")
    return _plan(board, pe, simd, bits, slots, rom_depth)


def _check_overflow(layers: dict[str, IntLinear]) -> None:
    for layer in layers.values():
        bound = layer.acc_bound()
        if bound >= ACC_LIMIT:
            raise DoesNotFit(f"layer {layer.name}: worst-case accumulator {bound} overflows int32 "
                             f"(K={layer.k}); use fewer weight bits or split the layer")


def _plan(board: Board, pe: int, simd: int, bits: int, slots: tuple[LayerSlot, ...],
          rom_depth: int | None = None) -> ModelPlan:
    weight_depth = _weight_depth(slots)
    channel_depth = sum(s.nf for s in slots)
    max_sf = max(s.sf for s in slots)
    if rom_depth is None:
        rom_depth, mem = _split(board, pe, simd, bits, weight_depth, channel_depth, max_sf)
    else:
        mem = engine_memories(pe, simd, bits, rom_depth, weight_depth - rom_depth,
                              channel_depth, max_sf)
    dsp, lut = estimate_resources(pe, simd, bits)
    return ModelPlan(board=board.name, part=board.part, clock_mhz=board.clock_mhz, pe=pe,
                     simd=simd, weight_bits=bits, layers=slots, weight_depth=weight_depth,
                     rom_depth=rom_depth, channel_depth=channel_depth, bram36=mem.bram36,
                     weight_bram36=mem.weights.bram36, uram=mem.uram, dsp=dsp,
                     lut=lut + mem.luts, bram_efficiency=round(mem.weight_efficiency, 4))
