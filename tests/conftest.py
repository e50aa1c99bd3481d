"""Shared test helpers: seeded random integer layers and hand-made engine plans."""

from __future__ import annotations

import numpy as np
import pytest

from vitfpga.hls.plan import EnginePlan
from vitfpga.ir import IntLinear, requant_params


def random_layer(k: int, n: int, bits: int = 4, relu: bool = False, seed: int = 0,
                 name: str = "blocks.0.mlp.fc1") -> IntLinear:
    """A seeded random layer in the integer contract, with realistic scales."""
    rng = np.random.default_rng(seed)
    hi = 2 ** (bits - 1) - 1
    weight = rng.integers(-hi, hi + 1, size=(n, k), dtype=np.int64)
    bias = rng.integers(-(2**12), 2**12, size=n, dtype=np.int64)
    in_scale, out_scale = 0.05, 0.08
    w_scale = rng.uniform(0.01, 0.05, size=n) / hi * 4
    mult, shift = requant_params(in_scale * w_scale / out_scale)
    return IntLinear(name=name, weight=weight, bias=bias, multiplier=mult, shift=shift,
                     weight_bits=bits, in_scale=in_scale, w_scale=w_scale, out_scale=out_scale,
                     relu=relu)


def hand_plan(layer: IntLinear, pe: int, simd: int, rows: int) -> EnginePlan:
    """A plan with a chosen folding, for kernel tests that do not exercise the planner."""
    return EnginePlan(board="pynq-z2", part="xc7z020clg400-1", clock_mhz=100.0,
                      layer=layer.name, ident="blocks_0_mlp_fc1", k=layer.k, n=layer.n,
                      rows=rows, pe=pe, simd=simd, weight_bits=layer.weight_bits, bram36=1,
                      uram=0, dsp=pe * simd, lut=0, bram_efficiency=1.0)


def random_rows(rows: int, k: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(rows, k), dtype=np.int64)


@pytest.fixture
def layer_factory():
    return random_layer
