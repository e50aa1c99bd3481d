"""The integer model (design.md §3): a re-export of the one contract in `vitfpga.runtime.model`,
which the board driver also carries, so every layer of vitfpga names the same classes."""

from __future__ import annotations

from vitfpga.runtime.model import (
    ACC_LIMIT,
    IntLinear,
    IntModel,
    ModelSpec,
    encode_layers,
    load_model,
    requant_params,
    weight_owners,
)

__all__ = ["ACC_LIMIT", "IntLinear", "IntModel", "ModelSpec", "encode_layers", "load_model",
           "requant_params", "weight_owners"]
