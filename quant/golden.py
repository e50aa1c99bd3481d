"""The integer golden of one linear layer: the exact arithmetic the engine must do, in PyTorch
int64 tensors. The whole integer-only ViT around it is `quant.intvit`.

The requantisation rule is written here once for Python; the HLS and Verilog kernels carry the
same rule in their own language and are checked against this function bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vitfpga.ir import IntLinear

__all__ = ["LinearBackend", "linear_int", "requantize"]

# Runs one integer linear layer somewhere else (the RTL simulation, a board): int8 rows (M, K) in,
# int8 rows (M, N) out, bit for bit what `linear_int` computes.
LinearBackend = Callable[[IntLinear, np.ndarray], np.ndarray]


def requantize(acc: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor,
               relu: bool = False) -> torch.Tensor:
    """`clamp((acc*M + 2^(S-1)) >> S, -128, 127)` in int64, per output channel (last axis)."""
    acc = acc.to(torch.int64)
    mult = mult.to(torch.int64)
    shift = shift.to(torch.int64)
    y = (acc * mult + (torch.ones_like(shift) << (shift - 1))) >> shift  # >> is arithmetic
    y = y.clamp(0 if relu else -128, 127)
    return y.to(torch.int8)


def linear_int(x: np.ndarray | torch.Tensor, layer: IntLinear) -> torch.Tensor:
    """int8 rows (M, K) -> int8 rows (M, N) exactly as the engine computes them."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.int64)
    if x.ndim != 2 or x.shape[1] != layer.k:
        raise ValueError(f"{layer.name}: expected (rows, {layer.k}) int8 input, "
                         f"got {tuple(x.shape)}")
    if x.min() < -128 or x.max() > 127:
        raise ValueError(f"{layer.name}: input values outside int8")
    w = torch.as_tensor(layer.weight, dtype=torch.int64)
    acc = x @ w.T + torch.as_tensor(layer.bias, dtype=torch.int64)
    if acc.abs().max() >= 2**31:
        raise OverflowError(f"{layer.name}: int32 accumulator overflow")
    return requantize(acc, torch.as_tensor(layer.multiplier), torch.as_tensor(layer.shift),
                      layer.relu)
