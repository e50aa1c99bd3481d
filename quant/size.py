"""What a compressed model stores, counted in real bits.

Two accountings, both reported (the papers' ratios count weights only; ours also says what the
whole model costs):
- weights: every linear layer's integer weights in the codec that stores them on chip
  (`IntLinear.codec`, runtime.codecs: packed intB, N:M values + positions, or codebook indices
  + table; export picks the cheapest exact one), counted without folding padding; a weight
  array shared by several layers (a DeepCompress decoder) counted once;
- whole model: the weights, plus what the engine keeps per output channel (int32 bias, 32-bit
  M, 8-bit S: its table lanes) and the host's parameters (LayerNorm, tokens, LUTs).
The float baseline is every parameter of the float teacher at 32 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vitfpga.ir import IntLinear, weight_owners
from vitfpga.runtime.codecs import CHANNEL_PAD, codec_for

__all__ = ["SizeReport", "float_bits", "model_size"]

TABLE_BITS = sum(bits for bits, _ in CHANNEL_PAD.values())  # per output channel


def float_bits(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, linear weights) of a float model at 32 bits each; a pruned float
    model's zero weights are stored as a bitmap plus its non-zeros, as above."""
    total = weights = 0
    for name, p in model.named_parameters():
        bits = p.numel() * 32
        if name.endswith("weight") and p.ndim == 2:
            nnz = int(torch.count_nonzero(p))
            bits = min(bits, p.numel() + nnz * 32)
            weights += bits
        total += bits
    return total, weights


@dataclass(frozen=True)
class SizeReport:
    fp32_bits: int  # the float teacher, every parameter
    fp32_weight_bits: int  # the float teacher's linear weights
    weight_bits: int  # encoded integer weights, shared arrays once
    table_bits: int  # per-channel bias and requant lanes
    host_bits: int  # non-linear parameters the integer model stores
    codecs: dict[str, str]

    @property
    def total_bits(self) -> int:
        return self.weight_bits + self.table_bits + self.host_bits

    @property
    def compressed_bytes(self) -> int:
        return (self.total_bits + 7) // 8

    @property
    def ratio(self) -> float:
        return self.fp32_bits / self.total_bits

    @property
    def weight_ratio(self) -> float:
        return self.fp32_weight_bits / self.weight_bits

    def to_json(self) -> dict[str, object]:
        return {"fp32_bytes": self.fp32_bits // 8, "fp32_weight_bytes": self.fp32_weight_bits // 8,
                "weight_bytes": (self.weight_bits + 7) // 8,
                "table_bytes": (self.table_bits + 7) // 8, "host_bytes": (self.host_bits + 7) // 8,
                "compressed_bytes": self.compressed_bytes, "ratio": round(self.ratio, 3),
                "weight_ratio": round(self.weight_ratio, 3), "codecs": self.codecs}


def model_size(teacher: torch.nn.Module, layers: dict[str, IntLinear],
               host_bits: int) -> SizeReport:
    fp32, fp32_weights = float_bits(teacher)
    owners = weight_owners(layers)
    weight_bits, codecs = 0, {}
    for name, layer in layers.items():
        codec = codec_for(layer.codec, layer.weight_bits)
        if owners[name] == name:
            weight_bits += codec.counted_bits(layer.weight)
            codecs[name] = codec.name
        else:
            codecs[name] = f"{codec.name} (shared)"
    tables = sum(layer.n for layer in layers.values()) * TABLE_BITS
    return SizeReport(fp32, fp32_weights, weight_bits, tables, host_bits, codecs)
