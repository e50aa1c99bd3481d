"""What the whole-model design costs and moves, beside the host-offload engine it contains
(docs/vit.md): cycles, PS-PL traffic, images/s at the board clock, and a resource estimate; and
the search for the fastest folding (PE x SIMD, row groups) whose whole design fits a board."""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from vitfpga.errors import DoesNotFit
from vitfpga.hls.plan.boards import Board, part_family
from vitfpga.hls.plan.decoders import codecs_spec, layer_codec
from vitfpga.hls.plan.engine import (
    BRAM_RESERVE,
    LUT_BUDGET,
    MAX_GROUPS,
    ModelPlan,
    estimate_resources,
    fixed_plan,
    fold_cycles,
    folding_label,
    folds,
)
from vitfpga.hls.plan.memory import (
    BRAM36_BITS,
    LUTRAM_MAX_DEPTH,
    URAM288_BITS,
    URAM288_SHAPE,
    MemoryMap,
    map_lutram,
    map_memory,
)
from vitfpga.hls.plan.program import (
    PACK_SHIFT,
    SOFTMAX_LANES_MAX,
    VitProgram,
    compile_vit,
    ln_choices,
    op_words,
    pack_shift,
    pair_weights,
    sm_choices,
    tokens_in_pairs,
)
from vitfpga.hls.plan.timing import level_budget
from vitfpga.ir import IntLinear, weight_owners
from vitfpga.runtime.codecs import Codec
from vitfpga.runtime.model import IntModel

__all__ = ["OPS_LOGIC_MAX", "PACK_SHIFT", "PLACEMENTS", "STYLE_CODES", "STYLE_PARAMS",
           "WHOLE_MAX_LANES", "ActivationMemory", "WholeModelPlan", "activation_memories",
           "engine_resources", "offload_ps_pl_bytes", "pack_shift", "plan_whole_model",
           "rom_blocks", "search_whole_model", "unit_resources"]

# Calibrated on Yosys synth_xilinx of the emitted units and of whole designs (_WHOLE_LUT_SCALE).
# The vector LayerNorm and softmax as a fixed part and a part per lane. DSPs per family, as the
# DSP48E1's 25 x 18 multiplier splits products the DSP48E2's 27 x 18 takes whole. LayerNorm
# (d, L): DSP48E1 (32, 4) 43, (192, 8) 80, (128, 2) 26, (128, 1) 17; DSP48E2 (32, 4) 34,
# (192, 4) 35, (192, 8) 63, (192, 32) 231: per lane 9 / 7, and one more above d = 32, where the
# row's S^2 high part (2*(log2 d - 1) bits) reaches Yosys's 9-bit minimum for a DSP product.
# Softmax at L 8: 81 DSP48E1, 49 DSP48E2, whatever the tokens. LUTs (xcup, L 8 and 32):
# LayerNorm 15.7k / 55.0k, softmax 6.9k / 21.5k. One residual-add lane (vitfpga_rescale_add.v)
# takes 4 DSP48.
_UNIT_DSP = {"xc7": {"ln": (7, 9), "sm": (1, 10)},
             "xcup": {"ln": (6, 7), "sm": (1, 6)}}
_LN_WIDE_ROW = 32  # rows longer than this take one more LayerNorm DSP (above)
# The LayerNorm alone is smaller today (xcup d 192: 6.8k at L 4, 11.5k at L 8; xc7 d 128: 3.2k
# at L 1, 4.3k at L 2), but flattened into a whole design a lane still adds about what these
# constants times _WHOLE_LUT_SCALE say (digits LN 2 -> 4 on xc7: +2.6k in Yosys), so they stay.
_LN_LUTS, _LN_LANE_LUTS = 2_650, 1_640
_SM_LUTS, _SM_LANE_LUTS = 2_000, 610
_ADD_LANE_DSP = 4
# Softmax widths the search tries: PE, PE/2, PE/4 (narrower ones only slow Q·Kᵀ further).
SM_CHOICES = 3
# The whole-model search's default cap on PE x groups x SIMD lanes: the board's DSPs, LUTs and
# memories decide below it (DeiT-Tiny on KV260 stops at 1,536 on LUTs and URAM; digits on Pynq-Z2
# at 128 on DSPs and LUTs).
WHOLE_MAX_LANES = 2048
# LUTs per engine lane, the streamed operand's select and packing (fitted when its buffer was
# LUT RAM inside the engine; the buffer is now an activation memory, counted by _place): 115
# fits the digits designs on xc7, 37 the DeiT-Tiny ones on xcup (both within 3% at the time).
# Per memory lane (max(PE, SIMD)): the GELU table's read port, the residual add and the
# sequencer's share; XM's and BM's rotations are priced apart (`rotator_luts`), as the
# program's alignment sets them.
_OPERAND_LANE_LUTS = {"xc7": 115, "xcup": 37}
_MEMORY_LANE_LUTS = 60
# The units' and lanes' constants above came from units synthesised alone and an older digits
# design; flattened into today's whole designs Yosys builds about 0.78 of what they add up to
# (the engine's own estimate, checked in tests, is kept as it is). Fitted on three whole
# designs (Yosys synth_xilinx -flatten, LUT + LUTRAM + SRL; planner before the scale):
#   digits PE 8 x SIMD 8, LN 4, softmax 8, xc7:    26.7k (33.2k)
#   digits PE 8 x SIMD 16, LN 4, softmax 4, xc7:   38.7k (46.4k)
#   DeiT-width block PE 4 x SIMD 16, LN 8, xcup:   31.9k (40.3k)
# Yosys against the planner on today's RTL (the memories rotating in the program's steps):
#   digits PE 8 x SIMD 16, LN 2, softmax 4, xc7:                34.6k (34.6k)
#   digits PE 8 x SIMD 16, LN 4, softmax 4, xc7:                36.6k (37.2k)
#   vit-1m PE 4 (x3 rows) x SIMD 16, LN 4, softmax 4, xc7:      27.4k (33.6k)
#   DeiT-Tiny PE 16 (x3 rows) x SIMD 32, LN 4, softmax 8, xcup: 80.2k (82.0k)
#   the same in pairs, the operand buffer's lanes split:          79.0k (79.8k)
# One scale does not fit every family and size: a whole design's LUTs are a +-25% estimate
# until Yosys builds it.
_WHOLE_LUT_SCALE = 0.78
# Tokens in pairs (vitfpga_mvu.v PAIR): per lane of the array, what the pairs' trees of ternary
# adders (twice the fields of single rows' binary trees), the second accumulators and the input
# sums add, less the weight-only rows' pre-adders. Fitted on DeiT-Tiny, PE 16 (x3 rows) x SIMD
# 32, LN 4, softmax 8 on xcup: 82.1k LUT in Yosys against 80.2k without pairs (94.0k with binary
# trees of signed 10-bit fields), both with the operand buffer unsplit.
_PAIR_LANE_LUTS = 1


def engine_resources(plan: ModelPlan, pairs: bool = False) -> tuple[int, int]:
    """(DSP, LUT) of the whole-model engine's array: every lane multiplies int8 x int8 (the
    streamed operand, docs/engine.md), as an 8-bit engine does, two lanes a DSP when packed;
    the row groups' lanes too (their weights sign-extended). With `pairs` (tokens in pairs,
    `tokens_in_pairs`) the same DSPs, a second adder tree a row."""
    dsp, lut = estimate_resources(plan.pe, plan.simd, 8, plan.groups)
    if pack_shift(plan):
        dsp -= plan.rows * plan.simd // 2
    if pairs:
        lut += _PAIR_LANE_LUTS * plan.rows * plan.simd
    return dsp, lut


def rotator_luts(prog: VitProgram) -> int:
    """LUTs of XM's and BM's lane rotations (vitfpga_vmem.v): a multiplexer a bit over the
    LANES / ALIGN positions an address can take, read and write (data and masks), priced per
    lane, element bit and 4:1 level. Fitted on what the alignment took out in Yosys: 2.9k LUT
    on digits (16 lanes, 16 to 2 and 4 positions), 8.7k at PE 16 x SIMD 32 (32 to 2 and 4)."""
    def levels(positions: int) -> int:
        return math.ceil(_log2(positions) / 2)

    return 8 * prog.lanes * (16 * levels(prog.lanes // prog.xm_align)
                             + 8 * levels(prog.lanes // prog.bm_align))


def unit_resources(prog: VitProgram, family: str) -> tuple[int, int]:
    """(DSP, LUT) of the LayerNorm and softmax units at their lanes on a part of `family` (the
    larger DSP48E1 counts where the family is unknown)."""
    per = _UNIT_DSP.get(family, _UNIT_DSP["xc7"])
    sm = prog.sm_lanes
    ln = per["ln"][0] + per["ln"][1] * prog.ln_lanes + (prog.dim > _LN_WIDE_ROW)
    dsp = ln + per["sm"][0] + per["sm"][1] * sm
    lut = _LN_LUTS + _LN_LANE_LUTS * prog.ln_lanes + _SM_LUTS + _SM_LANE_LUTS * sm
    return dsp, lut


@dataclass(frozen=True)
class WholeModelPlan:
    board: str
    clock_mhz: float
    pe: int
    simd: int
    groups: int  # the engine's row groups (ModelPlan.groups)
    ln_lanes: int  # LayerNorm elements a clock
    sm_lanes: int  # softmax scores a clock (PE, or a power of two below it)
    # A lower bound (VitProgram.bound_cycles): ops run one at a time, the units within one op
    # overlap, so each op counts its slowest unit's throughput bound.
    ideal_cycles_per_image: int
    macs_per_image: int  # linear layers and attention products
    ideal_by_unit: dict[str, int]  # the bound split by each op's slowest unit (sums to it)
    busy_by_unit: dict[str, int]  # each unit's own work per image (overlapping: sums to more)
    ps_pl_bytes_per_image: int  # patches in + logits out
    host_offload_ps_pl_bytes_per_image: int  # every linear layer's rows in and out
    host_offload_engine_cycles_per_image: int  # the engine's ideal alone (host ops not counted)
    activation_bytes: int  # XM (int16) and BM (int8) elements
    activation_bram36: float  # XM, BM, operand buffer, unit row buffers, block RAM ROMs
    activation_uram: int
    styles: dict[str, str]  # activation memories placed by attribute: "ultra" or "distributed"
    bram36: float  # engine + activations
    uram: int  # weights loaded at start-up + activations
    dsp: int
    lut: int
    fits: bool
    why: str
    pairs: bool = False  # the weight layers' rows two a weight word (VitProgram.pairs)

    @property
    def ideal_images_per_s(self) -> float:
        return self.clock_mhz * 1e6 / self.ideal_cycles_per_image

    @property
    def ideal_gops(self) -> float:
        """Giga-operations a second at the ideal (two per multiply-accumulate)."""
        return 2 * self.macs_per_image * self.ideal_images_per_s / 1e9

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "ideal_images_per_s": round(self.ideal_images_per_s, 1),
                "ideal_gops": round(self.ideal_gops, 2)}


@dataclass(frozen=True)
class ActivationMemory:
    name: str  # as in WholeModelPlan.styles
    width: int  # bits
    depth: int  # words of each bank
    banks: int = 1  # identical banks, placed together (vitfpga_vmem.v's even and odd)
    # False: never URAM, because it holds constants from the bitstream (URAM has no init) or
    # its RTL has no URAM variant (the units' shallow row buffers)
    uram: bool = True
    lutram: bool = False  # its RTL has a LUT RAM variant (vitfpga_lane_ram.v, int8 lanes)
    # in LUT RAM up to 64 words deep, a lane's top bit as a RAM64X1D (vitfpga_lane_ram.v
    # STYLE 3): the RTL can, and the part has RAM64M8s (UltraScale+), where it saves LUTs
    split: bool = False
    # bits each write enable covers (vitfpga_lane_ram.v's lanes); 0: the whole word. A LUT RAM
    # primitive has one write enable, so in LUT RAM each lane takes its own primitives; block
    # RAM writes a lane through whole byte enables of 9 bits (`bram_width`).
    lane_bits: int = 0
    rom: bool = False  # read-only, initialised: mapped as synthesis infers a ROM (else as a RAM:
    # block RAM or a placement, also a ROM that an attribute puts in block RAM)

    @property
    def bram_width(self) -> int:
        """Bits of block RAM a word takes: a lane written on its own fills whole 9-bit byte
        slots (a RAMB36's 72 bits have 8 byte enables), so XM's 16-bit lanes take 18 bits and
        int8 lanes 9 (Yosys on DeiT-Tiny: XM 40 BRAM36, not the 36 of its bare bits)."""
        if not self.lane_bits:
            return self.width
        return self.width // self.lane_bits * 9 * math.ceil(self.lane_bits / 9)


# The core's long ROMs (an op program of more than OPS_LOGIC_MAX ops, the softmax's exp tables)
# go into block RAM by attribute where the board's level budget is below ROM_LOGIC_BUDGET: in
# the flattened DeiT-Tiny design on UltraScale+ Yosys mapped them to chains of 10 LUTs, over the
# 8 of 250 MHz; the 7-series designs at 100 MHz keep them in logic within their 12 levels.
OPS_LOGIC_MAX = 64
ROM_LOGIC_BUDGET = 12


def _log2(n: int) -> int:
    """ceil(log2(n)), as Verilog's $clog2."""
    return max(n - 1, 0).bit_length()


def rom_blocks(plan: ModelPlan, prog: VitProgram) -> tuple[bool, bool]:
    """(op ROM, exp ROMs) in block RAM (vitfpga_vit_core.v's OPS_BLOCK, EXP_BLOCK) on `plan`'s
    part at its clock."""
    block = level_budget(part_family(plan.part), plan.clock_mhz) < ROM_LOGIC_BUDGET
    return block and len(prog.ops) > OPS_LOGIC_MAX, block


# Where the whole design puts its memories, most block RAM first: the planner's rules
# (map_memory), then URAM wherever it takes fewer blocks than block RAM, then also LUT RAM.
PLACEMENTS = ("block", "save-bram", "lutram")
# The memories whose RTL takes a placement (vitfpga_vit_core.v's BM_STYLE, OP_STYLE): the
# template's parameter for each, and vitfpga_lane_ram.v's STYLE code of each placement.
STYLE_PARAMS = {"bm": "bm_style", "operand": "op_style"}
STYLE_CODES = {"ultra": 1, "distributed": 2, "distributed-split": 3}


def activation_memories(plan: ModelPlan, prog: VitProgram) -> tuple[ActivationMemory, ...]:
    """Every memory the whole model adds to the engine: XM and BM as two banks of LANES-element
    words each (vitfpga_vmem.v), the operand buffer, the LayerNorm and softmax row buffers,
    and the ROMs `rom_blocks` puts in block RAM."""
    lanes = prog.lanes
    # The units' FIFO depths as their RTL sizes them: vitfpga_softmax_vec.v SDEPTH / EDEPTH
    # (a row's beats plus the tree's and the divider's clocks, rounded up to a power of two),
    # vitfpga_layernorm_vec.v BDW.
    sm_beats, sm_levels = math.ceil(prog.tokens / prog.sm_lanes), _log2(prog.sm_lanes)
    sm_scores = 1 << _log2(sm_beats + sm_levels + 4)
    sm_e = 1 << _log2(sm_beats + sm_levels + 38)
    ln_rows = prog.dim // prog.ln_lanes + 53 + _log2(prog.ln_lanes)
    ln_result_bits = 17 + _log2(prog.dim) + 5 + 32  # vitfpga_layernorm_vec.v RFW: S, k, root
    ops_block, exp_block = rom_blocks(plan, prog)
    xm_half = math.ceil((math.ceil(prog.xm_depth / lanes) + 1) / 2)
    bm_half = math.ceil((math.ceil(prog.bm_depth / lanes) + 1) / 2)
    return (ActivationMemory("xm", lanes * 16, xm_half, banks=2, uram=False, lane_bits=16),
            ActivationMemory("bm", lanes * 8, bm_half, banks=2, lane_bits=8),
            ActivationMemory("operand", plan.pe * plan.simd * 8, max(prog.op_depth, 1),
                             lutram=True, lane_bits=8,
                             split=part_family(plan.part) == "xcup"),
            # The units' buffers (vitfpga_layernorm_vec.v: a row plus the pipeline's fill;
            # vitfpga_softmax_vec.v: score and exponent FIFOs of about two rows each). Shallow
            # ones are LUT RAM (_map_one) inside the LUTs the units are calibrated on
            # (unit_resources), so only deeper ones are listed.
            *(m for m in (
                ActivationMemory("ln.rows", prog.ln_lanes * 16, ln_rows, uram=False),
                ActivationMemory("ln.results", ln_result_bits, 1 << _log2(ln_rows), uram=False),
                ActivationMemory("softmax.scores", prog.sm_lanes * 32, sm_scores, uram=False),
                ActivationMemory("softmax.e", prog.sm_lanes * 23, sm_e, uram=False))
              if m.depth > LUTRAM_MAX_DEPTH),
            # The softmax's exp ROM, one dual-port copy per two lanes (a block RAM of two 23-bit
            # read ports counts as one of 46 bits), and the op ROM, where an attribute puts them
            # in block RAM. In logic they are not listed: the LUTs the units and the whole
            # design are calibrated on include them.
            *([ActivationMemory("softmax.exp", 23 * min(prog.sm_lanes, 2), 256,
                                banks=math.ceil(prog.sm_lanes / 2), uram=False)]
              if exp_block else []),
            *([ActivationMemory("ops", _op_rom_bits(prog), len(prog.ops), uram=False)]
              if ops_block else []))


def _op_rom_bits(prog: VitProgram) -> int:
    """Bits of the op ROM that differ between ops: synthesis keeps no memory column for a bit
    every op has equal (DeiT-Tiny's 376-bit ops: 3 BRAM36 in Yosys, 5.5 for all the bits)."""
    words = op_words(prog.ops)
    varying = functools.reduce(operator.or_, (w ^ words[0] for w in words), 0)
    return max(1, varying.bit_count())


@dataclass(frozen=True)
class Placement:
    bram36: float
    uram: int
    luts: int
    styles: dict[str, str]  # memory -> "ultra" or "distributed"; the rest as synthesis infers


def _map_one(mem: ActivationMemory, uram_left: int, placement: str) -> tuple[MemoryMap, str]:
    """`mem`'s bank and its style: wholly in URAM where map_memory's rules put (part of) it
    there and every bank fits `uram_left` (the RTL places a memory with one attribute, so a
    memory split between URAM and block RAM is not built), else in LUT RAM with "lutram" where
    its RTL can, else where synthesis puts a memory without an attribute ("auto"): LUT RAM up
    to LUTRAM_MAX_DEPTH words, block RAM deeper. LUT RAM that `mem.split` allows is split
    ("distributed-split"), whether placed there or shallow enough to land there anyway."""
    blocks = math.ceil(mem.depth / URAM288_SHAPE[1]) * math.ceil(mem.width / URAM288_SHAPE[0])
    if mem.uram and blocks * mem.banks <= uram_left:
        # with room for every row, map_memory's URAM choice is the whole memory or nothing
        whole = map_memory(mem.width, mem.depth, blocks, save_bram=placement != "block")
        if whole.uram:
            return whole, "ultra"
    shallow = not mem.rom and mem.depth <= LUTRAM_MAX_DEPTH
    if mem.split and shallow:
        return map_lutram(mem.width, mem.depth, mem.lane_bits, split=True), "distributed-split"
    if mem.lutram and placement == "lutram":
        return map_lutram(mem.width, mem.depth, mem.lane_bits), "distributed"
    if shallow:
        return map_lutram(mem.width, mem.depth, mem.lane_bits or mem.width), "auto"
    return map_memory(mem.bram_width, mem.depth, rom=mem.rom), "auto"


def _place(memories: tuple[ActivationMemory, ...], uram: int, placement: str) -> Placement:
    """Block RAM, URAM and LUTs of the memories, mapped one by one while `uram` blocks are left
    (`_map_one`, at one of PLACEMENTS)."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement {placement!r}: one of {', '.join(PLACEMENTS)}")
    bram, used, luts, styles = 0.0, 0, 0, {}
    for mem in memories:
        m, style = _map_one(mem, uram - used, placement)
        bram += m.bram36 * mem.banks
        used += m.uram * mem.banks
        luts += m.luts * mem.banks
        if style in STYLE_CODES:
            styles[mem.name] = style
    return Placement(bram, used, luts, styles)


def offload_ps_pl_bytes(plan: ModelPlan) -> int:
    """Bytes across PS-PL per image when `plan`'s engine runs host-offload: every linear layer's
    padded rows in and out."""
    return sum(s.rows * (s.sf * plan.simd + s.nf * plan.pe) for s in plan.layers)


def plan_whole_model(plan: ModelPlan, prog: VitProgram, board: Board, placement: str = "block",
                     lut_budget: float = LUT_BUDGET) -> WholeModelPlan:
    """The whole design on `plan`'s engine: its activations take the URAM its weights leave,
    at one of PLACEMENTS; it fits within `lut_budget` of the board's LUTs."""
    act = _place(activation_memories(plan, prog), board.uram - plan.uram, placement)
    engine_dsp, engine_lut = engine_resources(plan, prog.pairs)
    unit_dsp, unit_lut = unit_resources(prog, part_family(plan.part))
    dsp = engine_dsp + unit_dsp + _ADD_LANE_DSP * plan.pe
    engine_memory_luts = plan.lut - estimate_resources(plan.pe, plan.simd, plan.weight_bits,
                                                       plan.groups)[1]
    operand_lane = _OPERAND_LANE_LUTS.get(part_family(plan.part), _OPERAND_LANE_LUTS["xc7"])
    added = (act.luts + unit_lut + operand_lane * plan.pe * plan.simd
             + _MEMORY_LANE_LUTS * prog.lanes + rotator_luts(prog))
    lut = engine_lut + engine_memory_luts + round(_WHOLE_LUT_SCALE * added)
    bram, uram = plan.bram36 + act.bram36, plan.uram + act.uram
    budget = board.bram36 * (1 - BRAM_RESERVE)
    fits = (bram <= budget and uram <= board.uram and dsp <= board.dsp
            and lut <= board.lut * lut_budget)
    why = (f"{bram:.1f} of {budget:.1f} BRAM36, {uram} of {board.uram} URAM, {dsp} of "
           f"{board.dsp} DSP, {lut:,} of {int(board.lut * lut_budget):,} LUT")
    offload = offload_ps_pl_bytes(plan)
    return WholeModelPlan(
        board=plan.board, clock_mhz=plan.clock_mhz, pe=plan.pe, simd=plan.simd,
        groups=plan.groups, ln_lanes=prog.ln_lanes, sm_lanes=prog.sm_lanes,
        ideal_cycles_per_image=prog.bound_cycles(), macs_per_image=prog.macs,
        ideal_by_unit=prog.bound_by_unit(),
        busy_by_unit=prog.ideal_cycles(),
        ps_pl_bytes_per_image=prog.in_beats * plan.simd + prog.out_beats * plan.pe,
        host_offload_ps_pl_bytes_per_image=offload,
        host_offload_engine_cycles_per_image=plan.cycles_per_image,
        activation_bytes=2 * prog.xm_depth + prog.bm_depth,
        activation_bram36=round(act.bram36, 1), activation_uram=act.uram, styles=act.styles,
        bram36=round(bram, 1), uram=uram, dsp=dsp, lut=lut, fits=fits, why=why,
        pairs=prog.pairs)


def _designs(model: IntModel, layers: dict[str, IntLinear], rows: dict[str, int],
             board: Board, pe: int, simd: int, groups: int, lut_budget: float = LUT_BUDGET
             ) -> Iterator[tuple[ModelPlan, VitProgram, WholeModelPlan]]:
    """Every whole design on a PE x SIMD engine of `groups` row groups: each LayerNorm width
    (`ln_choices`), the softmax at PE lanes or, only while no design fits the board, narrower
    (up to SM_CHOICES - 1 halvings: a narrower softmax is never faster, it frees DSPs and LUTs,
    and beside Q·Kᵀ it often costs no cycles), with the activations in block RAM, then in URAM
    where that saves blocks, the weights' ROM/URAM split redone with the block RAM they leave.
    Where the engine alone, with all of the board's URAM for its weights, is over the block
    RAM budget, no width or placement can fit: one design (the narrowest LayerNorm, in block
    RAM) shows the miss."""
    base = fixed_plan(layers, rows, board, pe, simd, groups=groups)
    if base.bram36 > board.bram36 * (1 - BRAM_RESERVE):
        prog = compile_vit(model, base, ln_choices(model.spec.dim, simd)[0], pe)
        yield base, prog, plan_whole_model(base, prog, board, lut_budget=lut_budget)
        return
    splits: dict[tuple[float, int], ModelPlan] = {}  # the weights' split per block RAM left
    # tokens in pairs where they may be, and without (their trees cost LUTs)
    pairings = (True, False) if tokens_in_pairs(model, base) else (False,)
    for ln in ln_choices(model.spec.dim, simd):
        for pairs in pairings:
            for sm in sm_choices(pe)[:SM_CHOICES]:
                # the ROM/URAM split does not change the program
                prog = compile_vit(model, base, ln, sm, pairs)
                designs = list(_placements(layers, rows, board, base, prog, splits,
                                           lut_budget))
                yield from designs
                if any(whole.fits for _, _, whole in designs):
                    break


def _placements(layers: dict[str, IntLinear], rows: dict[str, int], board: Board,
                base: ModelPlan, prog: VitProgram,
                splits: dict[tuple[float, int], ModelPlan], lut_budget: float = LUT_BUDGET
                ) -> Iterator[tuple[ModelPlan, VitProgram, WholeModelPlan]]:
    """`prog` at each of PLACEMENTS (LUT RAM only when nothing less costly in LUTs fits); the
    weights' split per block RAM left is kept in `splits` across programs."""
    mems = activation_memories(base, prog)
    fitted = False
    for placement in PLACEMENTS:
        if placement == "lutram" and fitted:
            return
        act = _place(mems, board.uram, placement)
        # leave the activations' BRAM out of the weights' split (it budgets 90%)
        rest = dataclasses.replace(board, bram36=board.bram36 - act.bram36 / (1 - BRAM_RESERVE),
                                   uram=board.uram - act.uram)
        if rest.bram36 <= 0:
            continue
        key = (rest.bram36, rest.uram)
        if key not in splits:
            splits[key] = fixed_plan(layers, rows, rest, base.pe, base.simd, groups=base.groups)
        whole = plan_whole_model(splits[key], prog, board, placement, lut_budget)
        fitted = fitted or whole.fits
        yield splits[key], prog, whole


def _foldings(layers: dict[str, IntLinear], codecs: dict[str, Codec], max_lanes: int
              ) -> Iterator[tuple[int, int, int]]:
    """(PE, SIMD, groups) with PE x groups x SIMD <= max_lanes: groups only where every
    layer has at least `groups` input folds, and only for dense and ternary weights
    (fixed_plan's rules). Groups need not be a power of two (the streams stay PE and SIMD
    wide): three fit DeiT-Tiny's weight words into URAM."""
    spec = codecs_spec(codecs)
    for pe in folds(min(max_lanes, SOFTMAX_LANES_MAX)):
        for simd in folds(max_lanes // pe):
            shortest = min(codecs[name].folds(layer.k, layer.n, pe, simd)[0]
                           for name, layer in layers.items())
            most = 1 if spec.nm or spec.codebook_bits else MAX_GROUPS
            for groups in range(1, min(most, max_lanes // (pe * simd), shortest) + 1):
                yield pe, simd, groups


def _check_weight_capacity(layers: dict[str, IntLinear], codecs: dict[str, Codec],
                           board: Board) -> None:
    """DoesNotFit at once where the encoded weights alone, without any folding's padding
    (one lane: PE = SIMD = 1), exceed the board's block RAM budget and URAM together: no
    folding can fit then, and trying them all takes minutes."""
    owners = weight_owners(layers)
    bits = sum(codecs[name].stream_elements(layer.k, layer.n, 1, 1) * codecs[name].element_bits
               for name, layer in layers.items() if owners[name] == name)
    capacity = (board.bram36 * (1 - BRAM_RESERVE) * BRAM36_BITS + board.uram * URAM288_BITS)
    if bits > capacity:
        raise DoesNotFit(f"the whole-model design does not fit {board.name}: its encoded weights "
                         f"alone are {bits / 1e6:.1f} Mbit, its block RAM (90%) and URAM hold "
                         f"{capacity / 1e6:.1f} Mbit; try fewer weight bits, low-rank layers or "
                         f"a larger board")


def search_whole_model(model: IntModel, layers: dict[str, IntLinear], rows: dict[str, int],
                       board: Board, max_lanes: int = WHOLE_MAX_LANES,
                       lut_budget: float = LUT_BUDGET
                       ) -> tuple[ModelPlan, VitProgram, WholeModelPlan]:
    """The fastest PE x SIMD folding, row groups (PE x groups x SIMD lanes, at most
    `max_lanes`), LayerNorm and softmax width, rows in pairs or not, whose whole design fits
    `board` within `lut_budget` of its LUTs (ties: less block RAM, then fewer groups, wider
    SIMD, LayerNorm, softmax; `_designs` lists the candidates of one folding). Raises
    DoesNotFit with the closest miss."""
    best: tuple[ModelPlan, VitProgram, WholeModelPlan] | None = None
    closest: WholeModelPlan | None = None

    def key(w: WholeModelPlan, prog: VitProgram) -> tuple[float, ...]:
        return (w.ideal_cycles_per_image, w.bram36, w.groups, -w.simd, -prog.ln_lanes,
                -prog.sm_lanes)

    codecs = {name: layer_codec(layer) for name, layer in layers.items()}
    _check_weight_capacity(layers, codecs, board)
    # Foldings by a lower bound of their ideal, the linear layers' engine cycles alone (their
    # rows in pairs where they might be), so that the search stops where no later one can be
    # faster.
    pairable = pair_weights(layers.values()) and PACK_SHIFT.get(part_family(board.part)) == 18
    bounded = sorted((fold_cycles(layers, rows, codecs, *f, pairs=pairable and f[2] > 1), f)
                     for f in _foldings(layers, codecs, max_lanes)
                     # at best packing halves the lanes' DSPs: prune what cannot fit even so
                     if estimate_resources(f[0], f[1], 8, f[2])[0] - math.prod(f) // 2
                     <= board.dsp)
    for bound, (pe, simd, groups) in bounded:
        if best is not None and bound > best[2].ideal_cycles_per_image:
            break
        for plan, prog, whole in _designs(model, layers, rows, board, pe, simd, groups,
                                          lut_budget):
            if not whole.fits:
                if closest is None or whole.bram36 < closest.bram36:
                    closest = whole
                continue
            if best is None or key(whole, prog) < key(best[2], best[1]):
                best = (plan, prog, whole)
    if best is None:
        if closest is None:
            raise DoesNotFit(f"no PE x SIMD folding up to {max_lanes} lanes fits "
                             f"{board.name}'s {board.dsp} DSP")
        raise DoesNotFit(f"the whole-model design does not fit {board.name}: at best "
                         f"{folding_label(closest.pe, closest.simd, closest.groups)} needs "
                         f"{closest.why}; try fewer "
                         f"weight bits, low-rank layers or a larger board")
    return best

