"""Brevitas quantisation-aware training: per-channel intB weights, int8 activations at every
linear layer's input and output, int32 bias — the numeric contract of design.md §3."""

from __future__ import annotations

from functools import partial

from brevitas.nn import QuantLinear
from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Int32Bias
from torch import nn

from vitfpga.quant.codecs import narrow_range
from vitfpga.quant.model import ViT, ViTConfig

__all__ = ["quant_linear", "quant_vit"]


def quant_linear(in_features: int, out_features: int, name: str, *, weight_bits: int) -> nn.Module:
    narrow_range(weight_bits)  # rejects unsupported bit-widths with a clear message
    return QuantLinear(
        in_features, out_features, bias=True,
        weight_quant=Int8WeightPerChannelFloat, weight_bit_width=weight_bits,
        input_quant=Int8ActPerTensorFloat, output_quant=Int8ActPerTensorFloat,
        bias_quant=Int32Bias, return_quant_tensor=False,
    )


def quant_vit(cfg: ViTConfig, teacher: ViT, weight_bits: int) -> ViT:
    """A Brevitas ViT initialised from the float teacher's weights."""
    student = ViT(cfg, partial(quant_linear, weight_bits=weight_bits))
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    # Only the quantisers' own parameters may be missing: they are learned from scratch.
    assert not unexpected, unexpected
    assert all("quant" in k for k in missing), missing
    return student
