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
from vitfpga.hls.plan.decoders import (
    DecoderSpec,
    codecs_spec,
    decoder_luts,
    layer_codec,
)
from vitfpga.hls.plan.layout import CHANNEL_PAD
from vitfpga.hls.plan.memory import (
    BRAM36_BITS,
    LUTRAM_MAX_DEPTH,
    URAM288_BITS,
    URAM288_SHAPE,
    MemoryMap,
    map_memory,
)
from vitfpga.hls.plan.names import unique_identifiers
from vitfpga.ir import ACC_LIMIT, IntLinear, weight_owners
from vitfpga.runtime.codecs import Codec, codec_for

__all__ = ["MAX_GROUPS", "MAX_LANES", "LayerSlot", "ModelPlan", "check_model_plan",
           "engine_latency", "estimate_resources", "fixed_plan", "fold_cycles", "folding_label",
           "folds", "plan_model", "tree_stages"]

# Part of the block RAM kept for the rest of the system (DMA buffers, interconnect FIFOs).
BRAM_RESERVE = 0.10
MAX_LANES = 64  # the host-offload engine's default lane cap (`plan --max-lanes`)
LUT_BUDGET = 0.70  # routing and the rest of the design need the remainder
MIN_MAC_UTILISATION = 0.95


@dataclass(frozen=True)
class LayerSlot:
    """One program entry: a linear layer on the engine."""

    name: str  # the model's name, never emitted as-is
    ident: str  # sanitised, unique identifier for generated code
    k: int
    n: int
    sf: int  # compute folds along K: K padded to sf*R*SIMD (R = 1 but for N:M)
    nf: int  # output beats of PE channels a row: N padded to nf*PE (the per-channel tables' words)
    rows: int  # rows per image (tokens this layer sees)
    w_base: int  # first weight word
    c_base: int  # first per-channel table word
    relu: bool
    codec: str  # runtime.codecs name: dense, nm:N:M, codebook:K
    bits: int  # the layer's weight bits
    ebits: int  # element bits a lane reads per iteration
    beats: int  # input beats of SIMD int8 per row: sf*R
    words: int  # weight-memory words of the layer's stream
    # Weight folds along N: N padded to folds*PE*groups (ModelPlan.groups; nf when groups = 1)
    folds: int

    @property
    def iterations(self) -> int:
        """Engine iterations per row: one element per lane each."""
        return self.folds * self.sf

    def ideal_cycles(self, rows: int, pairs: bool = False) -> int:
        """A true lower bound: every input beat takes a clock, and so does every iteration;
        with `pairs` (vitfpga_mvu.v PAIR) an iteration serves two rows."""
        if pairs:
            return max(-(-rows // 2) * self.iterations, rows * self.beats)
        return rows * max(self.iterations, self.beats)

    def last_beats(self, groups: int) -> int:
        """Output beats of a row's last weight fold (groups, or fewer where N stops short)."""
        return self.nf - (self.folds - 1) * groups


@dataclass(frozen=True)
class ModelPlan:
    board: str
    part: str
    clock_mhz: float
    pe: int
    simd: int
    weight_bits: int  # the widest decoded weight: the lane multipliers' width
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
    lane_bits: int  # weight-memory bits per lane: the widest element of any layer
    nm: tuple[int, ...]  # (N, M) of the design's N:M decoder, () without one
    codebook_bits: int  # widest codebook index; 0: no codebook decoder
    # Row groups (vitfpga_mvu.v PG): a weight fold computes PE*groups channels, which leave as
    # `groups` beats of PE; streamed operands use PE rows. Only the whole-model engine has more
    # than one (docs/engine.md, "Row groups").
    groups: int = 1

    @property
    def rows(self) -> int:
        """Output channels of a weight fold: the array's rows."""
        return self.pe * self.groups

    @property
    def word_bits(self) -> int:
        return self.rows * self.simd * self.lane_bits

    @property
    def nm_ratio(self) -> int:
        """R: inputs per lane per N:M iteration (1 without an N:M decoder)."""
        return self.nm[1] // self.nm[0] if self.nm else 1

    @property
    def onchip_weight_bits(self) -> int:
        """Weight-memory bits the encoded streams occupy (ROM and RAM parts), before the
        memories' primitive fragmentation, plus the codebook tables."""
        tables = len(self.layers) * (8 << self.codebook_bits) if self.codebook_bits else 0
        return self.weight_depth * self.word_bits + tables

    @property
    def ram_depth(self) -> int:
        """Weight words the host must load before the first run (0: none)."""
        return self.weight_depth - self.rom_depth

    @property
    def max_sf(self) -> int:
        return max(s.sf for s in self.layers)

    @property
    def max_beats(self) -> int:
        """Most input beats of any layer's row: the row buffer's bank depth."""
        return max(s.beats for s in self.layers)

    def decoder(self) -> DecoderSpec:
        """The weight decoders this plan's engine is built with."""
        return codecs_spec({s.name: codec_for(s.codec, s.bits) for s in self.layers})

    @property
    def cycles_per_image(self) -> int:
        return sum(s.ideal_cycles(s.rows) for s in self.layers)

    @property
    def mac_utilisation(self) -> float:
        """True MACs / (lanes x ideal cycles): what padding to whole folds costs."""
        # An N:M iteration does the work of R dense ones at the same lanes (R = beats / sf).
        macs = sum(s.rows * s.n * s.k * s.sf / s.beats for s in self.layers)
        return macs / (self.rows * self.simd * self.cycles_per_image)

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
        # plans saved before row groups: one weight fold per output beat
        data["layers"] = tuple(LayerSlot(**{"folds": s["nf"], **s}) for s in data["layers"])
        data["nm"] = tuple(data.get("nm", ()))
        return cls(**data)


def folding_label(pe: int, simd: int, groups: int = 1) -> str:
    """How reports name a folding: "PE=16 x SIMD=16", with row groups "PE=16 (x3 rows) x
    SIMD=16"."""
    rows = f" (x{groups} rows)" if groups > 1 else ""
    return f"PE={pe}{rows} x SIMD={simd}"


def check_model_plan(plan: ModelPlan, layers: dict[str, IntLinear], whole: bool = False
                     ) -> None:
    """Emitters refuse a plan made for other layers, and the host-offload ones (`whole` False)
    a plan with row groups, which only the whole-model engine builds."""
    if plan.groups > 1 and not whole:
        raise BadInput(f"the plan has {plan.groups} row groups, which only the whole-model "
                       f"design builds; plan the host-offload engine without --whole")
    for s in plan.layers:
        layer = layers.get(s.name)
        if layer is None:
            raise BadInput(f"the plan has layer {s.ident} that the model lacks")
        if (s.k, s.n, s.codec, s.bits) != (layer.k, layer.n, layer.codec, layer.weight_bits):
            raise BadInput(f"plan for {s.ident} is {s.k}x{s.n} {s.codec} int{s.bits}, but the "
                           f"layer is {layer.k}x{layer.n} {layer.codec} int{layer.weight_bits}")
        if s.sf * plan.simd * plan.nm_ratio < s.k or s.nf * plan.pe < s.n:
            raise BadInput(f"plan for {s.ident}: folds do not cover {s.n}x{s.k}")


def _slots(layers: dict[str, IntLinear], rows: dict[str, int], pe: int, simd: int,
           owners: dict[str, str], codecs: dict[str, Codec], lane: int, groups: int = 1
           ) -> tuple[LayerSlot, ...]:
    """Program entries in model order, each layer's stream packed at `lane` bits a lane, in
    folds of PE*groups rows.
    Layers sharing a weight owner (`ir.weight_owners`, found once per model, not per folding)
    read one copy: the weight memory holds it once, each keeps its own tables."""
    idents = unique_identifiers(layers)
    slots, w_base, c_base = [], 0, 0
    bases: dict[str, int] = {}
    for name, layer in layers.items():
        codec = codecs[name]
        sf, nf = codec.folds(layer.k, layer.n, pe, simd)
        folds = codec.folds(layer.k, layer.n, pe * groups, simd)[1]
        words = codec.words(layer.k, layer.n, pe * groups, simd, lane)
        base = bases.setdefault(owners[name], w_base)
        slots.append(LayerSlot(name=name, ident=idents[name], k=layer.k, n=layer.n, sf=sf, nf=nf,
                               rows=rows[name], w_base=base, c_base=c_base, relu=layer.relu,
                               codec=codec.name, bits=layer.weight_bits,
                               ebits=codec.element_bits, beats=sf * codec.ratio, words=words,
                               folds=folds))
        if base == w_base:
            w_base += words
        c_base += nf
    return tuple(slots)


def fold_cycles(layers: dict[str, IntLinear], rows: dict[str, int], codecs: dict[str, Codec],
                pe: int, simd: int, groups: int = 1, pairs: bool = False) -> int:
    """`ModelPlan.cycles_per_image` of a folding without laying out its memories (a search's
    bound; `codecs` as `layer_codec` gives them), with the rows in pairs for `pairs`."""
    owners = {name: name for name in layers}  # shared copies change the words, not the cycles
    slots = _slots(layers, rows, pe, simd, owners, codecs, codecs_spec(codecs).lane_bits, groups)
    return sum(s.ideal_cycles(s.rows, pairs) for s in slots)


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
# A row beyond PE (row groups): its accumulator and its share of the serializer's select; and
# per lane of such a row, whose products and adder tree are only WBITS + 8 bits wide (Yosys on
# the whole-model engine, xcup, PE 8 x SIMD 16 at int2: 11,226 LUT with three groups, 5,542
# with one; the planner 11,272 and 5,640).
_ROW_LUTS, _GROUP_LANE_LUTS = 48, 19
# Row groups at most (vitfpga_mvu.v PG: the program entry's 4-bit last-fold field).
MAX_GROUPS = 16


def tree_stages(lanes: int, radix: int) -> int:
    """Registered stages of vitfpga_addtree_pipe over `lanes` inputs, `radix` a node (4: binary,
    3: TERNARY): ceil(log_radix lanes), at least 1."""
    stages, left = 1, -(-lanes // radix)
    while left > 1:
        stages, left = stages + 1, -(-left // radix)
    return stages


def engine_latency(simd: int, packed: bool = False, groups: int = 1, pairs: bool = False) -> int:
    """Clocks a run of the engine (vitfpga_mvu.v) takes beyond its iterations (rows*NF*SF, or
    a pair's for `pairs`) when its stream flows freely: taking the start and landing the first
    beat (2), the reads (1), the products (2, or 3 packed), the adder tree's stages of four
    inputs (ceil(log4 SIMD), at least 1), the accumulator (1) and the requantisation (4); with
    row groups the serializer's hold, select and bias add (3) and the last fold's further beats
    (up to groups - 1). Pairs sum in stages of three inputs (ternary adders: ceil(log3 SIMD))
    and add the fields' combining stage, the input sum's stage and the second row's beats of the
    last fold (groups), and wait for the second row's first beat (up to SF, which the caller
    adds)."""
    tree = tree_stages(simd, 3 if pairs else 4)
    serializer = 3 + groups - 1 if groups > 1 else 0
    two = 2 + groups if pairs else 0
    return 2 + 1 + (3 if packed else 2) + tree + 1 + 4 + serializer + two


def estimate_resources(pe: int, simd: int, bits: int, groups: int = 1) -> tuple[int, int]:
    """(DSP, LUT) estimates for a PE x SIMD array of `groups` row groups, without its memories.

    Low-bit weights multiply in LUTs (vitfpga_lutmul: DSP48s would waste most of their width);
    8-bit weights take one DSP per lane. The 32x31-bit requant product takes four DSP48 slices per
    PE.
    """
    lanes, row_lanes = pe * simd, pe * (groups - 1) * simd
    dsp = 4 * pe + ((lanes + row_lanes) if bits == 8 else 0)
    lut = (lanes * (_LUTMUL_LUTS[bits] + _LANE_LUTS)
           + row_lanes * (_LUTMUL_LUTS[bits] + _GROUP_LANE_LUTS) + pe * _PE_LUTS
           + (groups - 1) * pe * _ROW_LUTS + _BASE_LUTS)
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


def engine_memories(pe: int, simd: int, spec: DecoderSpec, rom_depth: int, ram_depth: int,
                    channel_depth: int, max_beats: int, nlayers: int, groups: int = 1
                    ) -> Memories:
    """Every memory of the engine as synthesis maps it (vitfpga_mvu.v's arrays)."""
    width = pe * groups * simd * spec.lane_bits
    weights = (map_memory(width, rom_depth, rom=True) if rom_depth
               else MemoryMap(width, 0, 0, 0, (), logic=True))
    uram = math.ceil(width / URAM288_SHAPE[0]) * math.ceil(ram_depth / URAM288_SHAPE[1])
    tables = tuple(map_memory(pe * lane_bits, channel_depth, rom=True)
                   for lane_bits, _ in CHANNEL_PAD.values())
    if spec.codebook_bits:
        tables += (map_memory(8 << spec.codebook_bits, nlayers, rom=True),)
    # Two banks of 2^ceil(log2(beats)) beats (vitfpga_mvu.v pads each bank to a power of two),
    # read R beats at a time with an N:M decoder.
    r = spec.nm_ratio
    depth = (2 << max(1, (max_beats - 1).bit_length())) // r
    if depth <= LUTRAM_MAX_DEPTH:
        row_buffer = MemoryMap(simd * 8 * r, depth, 0, 0, (),
                               luts=math.ceil(simd * 8 * r / 6) * 2, logic=True)
    else:
        row_buffer = map_memory(simd * 8 * r, depth)
    return Memories(weights, uram if ram_depth else 0, width * (rom_depth + ram_depth),
                    (*tables, row_buffer))


def _split(board: Board, pe: int, simd: int, spec: DecoderSpec, slots: tuple[LayerSlot, ...],
           groups: int = 1) -> tuple[int, Memories]:
    """(rom_depth, memories): all weights in the ROM when that fits the block RAM budget, else
    the fewest whole URAM288 rows of trailing words that make it fit (or all the board has)."""
    weight_depth = _weight_depth(slots)

    def memories(rom_depth: int) -> Memories:
        return _memories(pe, simd, spec, slots, rom_depth, groups)

    best = (weight_depth, memories(weight_depth))
    per_row = math.ceil(pe * groups * simd * spec.lane_bits / URAM288_SHAPE[0])
    budget = board.bram36 * (1 - BRAM_RESERVE)
    for rows in range(1, board.uram // per_row + 1):
        if best[1].bram36 <= budget or best[0] == 0:
            break
        rom_depth = max(0, weight_depth - rows * URAM288_SHAPE[1])
        best = (rom_depth, memories(rom_depth))
    return best


def _memories(pe: int, simd: int, spec: DecoderSpec, slots: tuple[LayerSlot, ...],
              rom_depth: int, groups: int = 1) -> Memories:
    return engine_memories(pe, simd, spec, rom_depth, _weight_depth(slots) - rom_depth,
                           sum(s.nf for s in slots), max(s.beats for s in slots), len(slots),
                           groups)


def plan_model(layers: dict[str, IntLinear], rows: dict[str, int], board: Board,
               max_lanes: int = MAX_LANES) -> ModelPlan:
    """The fastest folding whose weights, DSPs and LUTs fit the board.

    Among foldings with at least 95% MAC utilisation (when any has), the fewest cycles per image
    win; ties go to fewer BRAM, then wider SIMD. Raises DoesNotFit with the numbers otherwise.
    """
    if not layers:
        raise BadInput("the model has no linear layers to plan")
    _check_overflow(layers)
    # Each layer's codec, checked once (an N:M check encodes the whole array), not per folding.
    codecs = {name: layer_codec(layer) for name, layer in layers.items()}
    spec = codecs_spec(codecs)
    bram_budget = board.bram36 * (1 - BRAM_RESERVE)
    candidates, smallest = [], None
    owners = weight_owners(layers)
    for pe in folds(max_lanes):
        for simd in folds(max_lanes // pe):
            dsp, _ = estimate_resources(pe, simd, spec.weight_bits)
            if dsp > board.dsp or spec.folding_error(simd):
                continue
            plan = _plan(board, pe, simd, spec,
                         _slots(layers, rows, pe, simd, owners, codecs, spec.lane_bits))
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
            f"N:M sparsity, low-rank layers or a larger board")
    good = [p for p in candidates if p.mac_utilisation >= MIN_MAC_UTILISATION] or candidates
    return min(good, key=lambda p: (p.cycles_per_image, p.bram36, -p.simd))


def fixed_plan(layers: dict[str, IntLinear], rows: dict[str, int], board: Board, pe: int,
               simd: int, rom_depth: int | None = None, groups: int = 1) -> ModelPlan:
    """The plan for a chosen PE x SIMD (and row groups, whole-model engines only), and
    optionally a chosen ROM/RAM split of the weights (kernel tests, and users who fold by hand);
    checks the overflow proof but not the board's budgets."""
    if not layers:
        raise BadInput("the model has no linear layers to plan")
    if pe < 1 or simd < 1:
        raise BadInput(f"PE and SIMD must be positive, got {pe} and {simd}")
    if not 1 <= groups <= MAX_GROUPS:
        raise BadInput(f"row groups must be 1 to {MAX_GROUPS}, got {groups}")
    _check_overflow(layers)
    codecs = {name: layer_codec(layer) for name, layer in layers.items()}
    spec = codecs_spec(codecs)
    why = spec.folding_error(simd)
    if why:
        raise BadInput(f"SIMD {simd}: {why}")
    slots = _slots(layers, rows, pe, simd, weight_owners(layers), codecs, spec.lane_bits,
                   groups)
    if groups > 1 and (spec.nm or spec.codebook_bits):
        # the decoders are per lane, so nothing in the RTL stands in the way, but no test has
        # run these codecs on row groups yet (dense and ternary have)
        raise BadInput(f"{groups} row groups are built for dense and ternary weights only; "
                       f"this model has N:M or codebook layers (use one row group)")
    if groups > 1 and (short := [s for s in slots if s.sf < groups]):
        # a fold's beats leave one a clock: with fewer input folds the array would wait
        raise BadInput(f"{groups} row groups need every layer's input folds SF >= {groups}; "
                       f"{short[0].ident} has {short[0].sf} at SIMD {simd}")
    if rom_depth is not None and not 0 <= rom_depth <= _weight_depth(slots):
        raise BadInput(f"rom_depth {rom_depth} is outside the weight memory")
    return _plan(board, pe, simd, spec, slots, rom_depth, groups)


def _check_overflow(layers: dict[str, IntLinear]) -> None:
    for layer in layers.values():
        bound = layer.acc_bound()
        if bound >= ACC_LIMIT:
            raise DoesNotFit(f"layer {layer.name}: worst-case accumulator {bound} overflows int32 "
                             f"(K={layer.k}); use fewer weight bits or split the layer")


def _plan(board: Board, pe: int, simd: int, spec: DecoderSpec, slots: tuple[LayerSlot, ...],
          rom_depth: int | None = None, groups: int = 1) -> ModelPlan:
    if rom_depth is None:
        rom_depth, mem = _split(board, pe, simd, spec, slots, groups)
    else:
        mem = _memories(pe, simd, spec, slots, rom_depth, groups)
    dsp, lut = estimate_resources(pe, simd, spec.weight_bits, groups)
    return ModelPlan(board=board.name, part=board.part, clock_mhz=board.clock_mhz, pe=pe,
                     simd=simd, weight_bits=spec.weight_bits, layers=slots,
                     weight_depth=_weight_depth(slots), rom_depth=rom_depth,
                     channel_depth=sum(s.nf for s in slots), bram36=mem.bram36,
                     weight_bram36=mem.weights.bram36, uram=mem.uram, dsp=dsp,
                     lut=lut + mem.luts + decoder_luts(spec, pe * groups, simd),
                     bram_efficiency=round(mem.weight_efficiency, 4), lane_bits=spec.lane_bits,
                     nm=spec.nm, codebook_bits=spec.codebook_bits, groups=groups)
