"""The integer golden: the exact arithmetic the hardware must do, in PyTorch int64 tensors.

The requantisation rule is written here once for Python; the HLS and Verilog kernels carry the
same rule in their own language and are checked against this function bit for bit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from vitfpga.ir import IntLinear

__all__ = ["GoldenLinear", "LinearBackend", "golden_vit", "linear_int", "requantize"]

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


class GoldenLinear(torch.nn.Module):
    """A float-facing wrapper: quantise to int8 at the layer's input scale, run the exact integer
    layer (here, or on `backend`), dequantise. Records the int8 rows it saw, so hardware tests use
    real activations."""

    def __init__(self, layer: IntLinear, backend: LinearBackend | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.backend = backend
        self.recorded: list[torch.Tensor] = []
        self.record = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        # torch.round is round-half-even, as Brevitas' activation quantiser.
        q = torch.round(x.reshape(-1, shape[-1]).double() / self.layer.in_scale).clamp(-128, 127)
        q = q.to(torch.int64)
        if self.record:
            self.recorded.append(q)
        if self.backend is None:
            y_int = linear_int(q, self.layer)
        else:
            y_int = torch.as_tensor(np.asarray(self.backend(self.layer, q.numpy())))
        y = y_int.double() * self.layer.out_scale
        return y.reshape(*shape[:-1], self.layer.n).to(x.dtype)


def golden_vit(qat_model: torch.nn.Module, layers: dict[str, IntLinear],
               backend: LinearBackend | None = None) -> torch.nn.Module:
    """The QAT model with every linear layer replaced by its exact integer version, computed
    here or, with `backend`, wherever the backend runs it (hardware in the loop).

    First cut: LayerNorm, softmax, GELU and residual adds still run in float between the integer
    layers (they move to integer definitions with the compression issue).
    """
    golden = copy.deepcopy(qat_model)
    for name, layer in layers.items():
        parent_name, _, attr = name.rpartition(".")
        parent = golden.get_submodule(parent_name) if parent_name else golden
        setattr(parent, attr, GoldenLinear(layer, backend))
    return golden.eval()
