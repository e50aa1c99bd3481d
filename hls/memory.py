"""Map a width x depth memory onto BRAM36 aspect ratios (or URAM288) and count the cost."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BRAM36_SHAPES", "MemoryMap", "map_memory"]

BRAM36_BITS = 36 * 1024
# (data width, depth) configurations of one RAMB36 (UG473 / UG573).
BRAM36_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))
URAM288_SHAPE = (72, 4096)
URAM288_BITS = 72 * 4096


@dataclass(frozen=True)
class MemoryMap:
    width: int
    depth: int
    bram36: int
    uram: int
    shape: tuple[int, int]  # the primitive configuration chosen

    @property
    def bits(self) -> int:
        return self.width * self.depth

    @property
    def efficiency(self) -> float:
        """Bits stored / bits of the primitives used."""
        capacity = self.bram36 * BRAM36_BITS + self.uram * URAM288_BITS
        return self.bits / capacity if capacity else 1.0


def map_memory(width: int, depth: int, allow_uram: bool = False) -> MemoryMap:
    """The cheapest tiling of `width x depth` by one primitive shape: the fewest BRAM36, or URAM288
    where that spends no more capacity (a URAM288 is eight BRAM36s' worth, and on the parts that
    have URAM the BRAM is the scarcer pool)."""
    if width <= 0 or depth <= 0:
        raise ValueError("memory width and depth must be positive")
    best = min(((math.ceil(width / w) * math.ceil(depth / d), (w, d)) for w, d in BRAM36_SHAPES),
               key=lambda c: (c[0], -c[1][0]))
    result = MemoryMap(width, depth, best[0], 0, best[1])
    if allow_uram:
        w, d = URAM288_SHAPE
        count = math.ceil(width / w) * math.ceil(depth / d)
        if count * URAM288_BITS <= best[0] * BRAM36_BITS:
            result = MemoryMap(width, depth, 0, count, URAM288_SHAPE)
    return result
