"""How many LUT levels fit between two registers at a board's clock: a rule of thumb that stands in
for place-and-route timing until Vivado is run (the logic-depth check of `vitfpga.sim.depth`).

The rule is proportional: a family spends a fixed time per LUT level, routing and the share of
the register's clock-to-out and setup included, so

    budget(family, f) = floor(LEVEL_NS_MHZ[family] / f)     (f in MHz, levels x MHz constant)

with the constant fitted to one anchor per family (LEVEL_BUDGET): 8 levels at 250 MHz on
UltraScale+ (0.5 ns a level) and 12 levels at 100 MHz on 7-series (0.83 ns a level, slower
LUTs and longer routes). A carry-chain cell, an F7/F8 mux and a combinational DSP count as the
levels `vitfpga.sim.depth` gives them.
"""

from __future__ import annotations

import math

from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import FAMILIES, Board

__all__ = ["LEVEL_BUDGET", "LEVEL_NS_MHZ", "board_level_budget", "level_budget"]

# The anchors, (family, clock MHz) -> LUT levels: the rule of thumb.
LEVEL_BUDGET: dict[tuple[str, float], int] = {("xcup", 250.0): 8, ("xc7", 100.0): 12}
# levels x MHz per family, the one constant each anchor fixes.
LEVEL_NS_MHZ: dict[str, float] = {family: levels * mhz
                                  for (family, mhz), levels in LEVEL_BUDGET.items()}


def level_budget(family: str, clock_mhz: float) -> int:
    """The most LUT levels between registers at `clock_mhz` on `family` (xc7 or xcup)."""
    if family not in LEVEL_NS_MHZ:
        raise BadInput(f"no logic-depth rule for family {family!r}; known: "
                       f"{', '.join(f for f in FAMILIES if f in LEVEL_NS_MHZ)}")
    if not clock_mhz > 0:
        raise BadInput(f"clock {clock_mhz} MHz must be positive")
    # A small tolerance keeps an anchor exact under float division (1200 / 100.0 is 12).
    levels = math.floor(LEVEL_NS_MHZ[family] / clock_mhz + 1e-9)
    if levels < 1:
        raise BadInput(f"{clock_mhz:g} MHz on {family} leaves no room for one LUT level "
                       f"between registers (at most {LEVEL_NS_MHZ[family]:g} MHz)")
    return levels


def board_level_budget(board: Board) -> int:
    """The level budget at a board's own clock and family."""
    return level_budget(board.synth_family, board.clock_mhz)
