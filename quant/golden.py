"""The integer golden of one linear layer, as torch tensors for vitfpga's callers. The
arithmetic is `vitfpga.runtime` (numpy), the one Python implementation, which the PYNQ driver
also carries; the whole integer-only ViT around it is `quant.intvit` / `runtime.forward`.

The requantisation rule is written once for Python (`runtime.intmath.requantize`); the HLS and
Verilog kernels carry the same rule in their own language and are checked against it bit for
bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vitfpga import runtime
from vitfpga.ir import IntLinear
from vitfpga.runtime import intmath

__all__ = ["LinearBackend", "linear_int", "requantize", "runtime_layer"]

# Runs one integer linear layer somewhere else (the RTL simulation, a board): int8 rows (M, K) in,
# int8 rows (M, N) out, bit for bit what `linear_int` computes.
LinearBackend = Callable[[IntLinear, np.ndarray], np.ndarray]


def runtime_layer(layer: IntLinear) -> runtime.Layer:
    """The runtime's view of an `IntLinear` (the same arrays, no copy when already int64)."""
    return runtime.Layer(name=layer.name, weight=layer.weight, bias=layer.bias,
                         multiplier=layer.multiplier, shift=layer.shift, relu=layer.relu,
                         in_scale=layer.in_scale, out_scale=layer.out_scale)


def requantize(acc: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor,
               relu: bool = False) -> torch.Tensor:
    """`clamp((acc*M + 2^(S-1)) >> S, -128, 127)` in int64, per output channel (last axis);
    returned as int8."""
    y = intmath.requantize(np.asarray(acc), np.asarray(mult), np.asarray(shift), relu)
    return torch.from_numpy(y.astype(np.int8))


def linear_int(x: np.ndarray | torch.Tensor, layer: IntLinear) -> torch.Tensor:
    """int8 rows (M, K) -> int8 rows (M, N) exactly as the engine computes them."""
    return torch.from_numpy(runtime.linear_golden(np.asarray(x), runtime_layer(layer))
                            .astype(np.int8))
