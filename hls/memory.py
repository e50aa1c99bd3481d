"""Map a width x depth memory onto block RAM (BRAM36, or its BRAM18 halves) or URAM288, and count
what it costs.

A memory may be built from columns of different aspect ratios (a 64-bit word as one 36-bit and one
18-bit column plus ...): a small dynamic programme over the width finds the cheapest mix, which is
what keeps BRAM efficiency high for widths that are not multiples of 72.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BRAM18_SHAPES", "BRAM36_BITS", "BRAM36_SHAPES", "MemoryMap", "map_memory"]

BRAM36_BITS = 36 * 1024
URAM288_BITS = 72 * 4096
# (data width, depth) configurations of one RAMB36 / RAMB18 (UG473, UG573).
BRAM36_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))
BRAM18_SHAPES = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
URAM288_SHAPE = (72, 4096)


@dataclass(frozen=True)
class MemoryMap:
    width: int
    depth: int
    bram18: int  # in RAMB18 halves: a RAMB36 counts 2
    uram: int
    columns: tuple[tuple[int, int, int], ...]  # (primitive width, depth, columns of it)

    @property
    def bram36(self) -> float:
        return self.bram18 / 2

    @property
    def bits(self) -> int:
        return self.width * self.depth

    @property
    def efficiency(self) -> float:
        """Bits stored / bits of the primitives used."""
        capacity = self.bram18 * BRAM36_BITS // 2 + self.uram * URAM288_BITS
        return self.bits / capacity if capacity else 1.0


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


def map_memory(width: int, depth: int, uram_limit: int = 0) -> MemoryMap:
    """The cheapest mapping. With URAM available (`uram_limit` > 0), the deepest part of the
    memory goes into URAM288 when that spends no more capacity than block RAM would, and what
    does not fit the URAM limit stays in block RAM (on parts with URAM, BRAM is the scarcer
    pool)."""
    if width <= 0 or depth <= 0:
        raise ValueError("memory width and depth must be positive")
    halves, columns = _bram_columns(width, depth)
    best = MemoryMap(width, depth, halves, 0, columns)
    if uram_limit > 0:
        w, d = URAM288_SHAPE
        per_row = math.ceil(width / w)
        rows = min(math.ceil(depth / d), uram_limit // per_row)
        if rows > 0:
            rest = depth - min(depth, rows * d)
            rest_halves, rest_cols = _bram_columns(width, rest) if rest else (0, ())
            hybrid = MemoryMap(width, depth, rest_halves, rows * per_row,
                               ((w, d, per_row), *rest_cols))
            capacity = rows * per_row * URAM288_BITS + rest_halves * BRAM36_BITS // 2
            if capacity <= halves * BRAM36_BITS // 2:
                best = hybrid
    return best
