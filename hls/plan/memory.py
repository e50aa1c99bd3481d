"""Map a width x depth memory onto block RAM (BRAM36, or its BRAM18 halves), URAM288 or LUTs, and
count what it costs.

Two models:

- `map_memory(w, d)`: the cheapest column tiling of a hand-built memory. Columns of different
  aspect ratios may be mixed (a 64-bit word as one 36-bit and one 18-bit column plus ...): a small
  dynamic programme over the width finds the cheapest mix, which is what keeps BRAM efficiency
  high for widths that are not multiples of 72. URAM288 is used where it is no more wasteful.
- `map_memory(w, d, rom=True)`: what synthesis infers for the engine's ROMs (a `reg` array
  loaded by `$readmemh`, one registered read port), following Yosys `synth_xilinx`'s
  `memory_libmap` as measured with `vitfpga.sim.synth`: one primitive shape for the whole
  memory, depth rows packed side by side into its width (48x3000 is four 36x1024 RAMB36, where
  whole columns would take 4.5), chosen by Yosys's cost (129 per RAMB18, 257 per RAMB36, plus
  half a unit per bit of read multiplexer across depth-stacked primitives), and lowered to LUTs
  instead when that costs less, a ROM bit in logic costing 1/64 (`-logic-cost-rom 0.015625`).
  In effect a ROM that would fill less than ~45% of its block RAM becomes LUTs (64x15 and
  160x30 tables, a 128x128 weight memory). Never URAM: URAM288 cannot be initialised on
  UltraScale+ (Yosys's URAM model allows only zero init), so a ROM on those parts lands in block
  RAM however large it is.

`map_lutram(w, d, lane_bits)` is the LUT RAM alternative for a memory written by lanes: RAM64M8
primitives (8 LUTs: 64 words of 7 bits, one write port), each lane in whole primitives of its own
since lanes are written separately. With `split` (vitfpga_lane_ram.v STYLE 3, UltraScale+, up to
64 words) a lane's top bit is a RAM64X1D of 2 LUTs instead: an int8 lane in 10 LUTs, not 16.

All report `luts`: LUTs the memory costs outside RAM primitives (a ROM in logic, or the read
multiplexer of depth-stacked primitives, e.g. 576 LUTs for 576x1500 as three 512-deep rows).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

__all__ = ["BRAM18_SHAPES", "BRAM36_BITS", "BRAM36_SHAPES", "LUTRAM_MAX_DEPTH", "ROM_LOGIC_COST",
           "URAM288_BITS", "MemoryMap", "map_lutram", "map_memory"]

BRAM36_BITS = 36 * 1024
URAM288_BITS = 72 * 4096
# (data width, depth) configurations of one RAMB36 / RAMB18 (UG473, UG573).
BRAM36_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))
BRAM18_SHAPES = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
URAM288_SHAPE = (72, 4096)

# Yosys synth_xilinx memory_libmap costs (techlibs/xilinx/brams_xc4v.txt, synth_xilinx.cc,
# memory_libmap.cc), used by the ROM model so that the planner predicts what Yosys builds.
_YOSYS_COST = {1: 129, 2: 257}  # by size in RAMB18 halves
_YOSYS_MUX_FACTOR = 0.5  # per data bit per extra depth row
ROM_LOGIC_COST = 1 / 64  # per bit of a ROM lowered to LUTs
_LUT6_ROM_DEPTH = 64  # one LUT6 is a 64x1 ROM; MUXF7/F8 widen it to 256 without LUTs
# RAM64M8 (UltraScale+): 7 bits x 64 words in 8 LUTs. 7-series' RAM64M holds 3 bits in 4 LUTs,
# fewer LUTs for an 8-bit lane, so the count is an upper bound there.
_LUTRAM_SHAPE = (7, 64)
# A RAM this shallow and without a ram_style attribute Yosys builds as LUT RAM, not block RAM
# (seen on both families: the engine's row buffer, digits' XM and operand buffer, the softmax's
# score FIFOs).
LUTRAM_MAX_DEPTH = 64
_LUTRAM_LUTS = 8
_X1D_LUTS = 2  # RAM64X1D: one bit of 64 words, a LUT at the write address and one at the read
_MUX_INPUTS_PER_LUT = 3  # a chain of LUT6 4:1 muxes adds three inputs per LUT


@dataclass(frozen=True)
class MemoryMap:
    width: int
    depth: int
    bram18: int  # in RAMB18 halves: a RAMB36 counts 2
    uram: int
    # (primitive width, depth, n): n columns of stacked primitives; with rom=True, n primitives
    # (Yosys packs the depth rows side by side, so they need not form whole columns)
    columns: tuple[tuple[int, int, int], ...]
    luts: int = 0  # LUTs outside RAM primitives: logic ROM, or the read mux across depth rows
    logic: bool = False  # lowered to LUTs entirely (a small ROM)

    @property
    def bram36(self) -> float:
        return self.bram18 / 2

    @property
    def bits(self) -> int:
        return self.width * self.depth

    @property
    def efficiency(self) -> float:
        """Bits stored / bits of the primitives used (1.0 when no RAM primitive is used)."""
        capacity = self.bram18 * BRAM36_BITS // 2 + self.uram * URAM288_BITS
        return self.bits / capacity if capacity else 1.0


def _mux_luts(rows: int) -> int:
    """LUTs per data bit to select one of `rows` stacked primitive outputs."""
    return math.ceil((rows - 1) / _MUX_INPUTS_PER_LUT) if rows > 1 else 0


def _column_mux_luts(columns: tuple[tuple[int, int, int], ...], depth: int) -> int:
    return sum(w * n * _mux_luts(math.ceil(depth / d)) for w, d, n in columns)


def _bram_columns(width: int, depth: int) -> tuple[int, tuple[tuple[int, int, int], ...]]:
    """Cheapest (BRAM18 halves, columns) covering `width` bits at `depth` words."""
    options = [(w, d, 2 * math.ceil(depth / d)) for w, d in BRAM36_SHAPES]
    options += [(w, d, math.ceil(depth / d)) for w, d in BRAM18_SHAPES]

    # best[w]: cheapest (cost, columns) covering w bits; built bottom-up (widths reach thousands).
    best: list[tuple[int, tuple[tuple[int, int, int], ...]]] = [(0, ())]
    for w in range(1, width + 1):
        choices = []
        for ow, od, cost in options:
            rest_cost, rest_cols = best[max(0, w - ow)]
            choices.append((cost + rest_cost, ((ow, od, cost), *rest_cols)))
        best.append(min(choices, key=lambda c: (c[0], len(c[1]))))
    cost, cols = best[width]
    merged: dict[tuple[int, int], int] = {}
    for ow, od, _ in cols:
        merged[(ow, od)] = merged.get((ow, od), 0) + 1
    return cost, tuple(sorted(((w, d, n) for (w, d), n in merged.items()), reverse=True))


def _logic_rom_luts(width: int, depth: int) -> int:
    """A ROM in LUT6s: 64 words per LUT per bit, MUXF7/F8 up to 256, LUT muxes beyond."""
    per_bit = math.ceil(depth / _LUT6_ROM_DEPTH) + _mux_luts(math.ceil(depth / 256))
    return width * per_bit


def _map_rom(width: int, depth: int) -> MemoryMap:
    """Yosys memory_libmap's choice for a ROM with one registered read port."""
    # memory_libmap keeps the logic fallback unless a RAM configuration is strictly cheaper
    # than its cost truncated to an integer.
    best_cost = int(width * depth * ROM_LOGIC_COST)
    best: MemoryMap | None = None
    for halves, shapes in ((2, BRAM36_SHAPES), (1, BRAM18_SHAPES)):
        for w, d in shapes:
            # Depth rows are packed side by side into the primitives' width (48x3000 is four
            # 36x1024 RAMB36, not two columns of three), so only the total bits are rounded up.
            rows = math.ceil(depth / d)
            count = math.ceil(rows * width / w)
            cost = _YOSYS_COST[halves] * count + _YOSYS_MUX_FACTOR * (rows - 1) * width
            if cost < best_cost:
                best_cost = cost
                best = MemoryMap(width, depth, halves * count, 0, ((w, d, count),),
                                 luts=width * _mux_luts(rows))
    if best is None:
        return MemoryMap(width, depth, 0, 0, (), luts=_logic_rom_luts(width, depth), logic=True)
    return best


# A pure function of a few integers that the planners' searches ask about the same memories
# thousands of times: remembered.
@functools.lru_cache(maxsize=65536)
def map_memory(width: int, depth: int, uram_limit: int = 0, *, rom: bool = False,
               save_bram: bool = False) -> MemoryMap:
    """The cheapest mapping. With URAM available (`uram_limit` > 0), the deepest part of the
    memory goes into URAM288 when that spends no more capacity than block RAM would, and what
    does not fit the URAM limit stays in block RAM (on parts with URAM, BRAM is the scarcer
    pool). With `save_bram`, for designs where block RAM is what runs out, it goes into URAM
    whenever that takes fewer URAM blocks than BRAM36 blocks, capacity wasted or not.

    `rom=True` models an initialised, read-only memory as synthesis infers it instead (see the
    module docstring): one primitive shape, small ROMs in LUTs, and never URAM, whatever
    `uram_limit` says.
    """
    if width <= 0 or depth <= 0:
        raise ValueError("memory width and depth must be positive")
    if rom:
        return _map_rom(width, depth)
    halves, columns = _bram_columns(width, depth)
    best = MemoryMap(width, depth, halves, 0, columns, luts=_column_mux_luts(columns, depth))
    if uram_limit > 0:
        w, d = URAM288_SHAPE
        per_row = math.ceil(width / w)
        rows = min(math.ceil(depth / d), uram_limit // per_row)
        if rows > 0:
            rest = depth - min(depth, rows * d)
            rest_halves, rest_cols = _bram_columns(width, rest) if rest else (0, ())
            stacked = rows + (1 if rest else 0)  # the block RAM part muxes in as one more row
            hybrid = MemoryMap(width, depth, rest_halves, rows * per_row,
                               ((w, d, per_row), *rest_cols),
                               luts=width * _mux_luts(stacked)
                               + _column_mux_luts(rest_cols, rest))
            capacity = rows * per_row * URAM288_BITS + rest_halves * BRAM36_BITS // 2
            if capacity <= halves * BRAM36_BITS // 2 or (
                    save_bram and rows * per_row < (halves - rest_halves) / 2):
                best = hybrid
    return best


def map_lutram(width: int, depth: int, lane_bits: int, split: bool = False) -> MemoryMap:
    """`width` bits x `depth` words in LUT RAM, written by lanes of `lane_bits`: LUTs for the
    primitives, the read multiplexer across depth rows and a write enable per lane and row
    (as Yosys `synth_xilinx -family xcup` maps vitfpga_lane_ram.v with STYLE 2, or with
    `split` STYLE 3: a lane's top bit in a RAM64X1D, at most 64 words)."""
    bits, words = _LUTRAM_SHAPE
    if width <= 0 or depth <= 0 or width % lane_bits or (split and depth > words):
        raise ValueError("LUT RAM: positive width and depth, whole lanes, split at most 64 "
                         "words deep")
    lanes, rows = width // lane_bits, math.ceil(depth / words)
    lane_luts = (_LUTRAM_LUTS * math.ceil((lane_bits - 1) / bits) + _X1D_LUTS if split
                 else _LUTRAM_LUTS * math.ceil(lane_bits / bits))
    return MemoryMap(width, depth, 0, 0, (), luts=lanes * lane_luts * rows
                     + width * _mux_luts(rows) + lanes * rows, logic=True)
