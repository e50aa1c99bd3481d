"""Shared test helpers: seeded random integer layers and hand-made engine plans."""

from __future__ import annotations

from vitfpga.hls.names import identifier
from vitfpga.hls.plan import EnginePlan
from vitfpga.ir import IntLinear
from vitfpga.quant.synthetic import random_layer, random_rows

__all__ = ["hand_plan", "random_layer", "random_rows"]


def hand_plan(layer: IntLinear, pe: int, simd: int, rows: int) -> EnginePlan:
    """A plan with a chosen folding, for kernel tests that do not exercise the planner."""
    return EnginePlan(board="pynq-z2", part="xc7z020clg400-1", clock_mhz=100.0,
                      layer=layer.name, ident=identifier(layer.name), k=layer.k, n=layer.n,
                      rows=rows, pe=pe, simd=simd, weight_bits=layer.weight_bits, bram36=1,
                      uram=0, dsp=pe * simd, lut=0, bram_efficiency=1.0)

