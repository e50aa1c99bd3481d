"""Shared test helpers: seeded random integer layers and hand-folded engine plans."""

from __future__ import annotations

from vitfpga.hls.boards import get_board
from vitfpga.hls.plan import ModelPlan, fixed_plan
from vitfpga.ir import IntLinear
from vitfpga.quant.synthetic import random_layer, random_rows

__all__ = ["hand_model_plan", "random_layer", "random_rows"]


def hand_model_plan(layers: dict[str, IntLinear], pe: int, simd: int,
                    rows: int = 4) -> ModelPlan:
    """A whole-model plan on pynq-z2 with a chosen folding; every layer sees `rows` rows."""
    return fixed_plan(layers, dict.fromkeys(layers, rows), get_board("pynq-z2"), pe, simd)
