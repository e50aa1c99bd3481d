"""Brevitas quantisation-aware training: per-channel intB weights, int8 activations at every
linear layer's input and output, int32 bias — the numeric contract of design.md §3."""

from __future__ import annotations

from brevitas.nn import QuantLinear
from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Int32Bias
from torch import nn

from vitfpga.quant.codecs import narrow_range
from vitfpga.quant.model import ViT, ViTConfig
from vitfpga.quant.structure import Structure, dense_structure, slot_factory, tie_shared_decoders

__all__ = ["float_vit", "quant_linear", "quant_vit"]


def quant_linear(in_features: int, out_features: int, name: str, bits: int) -> nn.Module:
    narrow_range(bits)  # rejects unsupported bit-widths with a clear message
    return QuantLinear(
        in_features, out_features, bias=True,
        weight_quant=Int8WeightPerChannelFloat, weight_bit_width=bits,
        input_quant=Int8ActPerTensorFloat, output_quant=Int8ActPerTensorFloat,
        bias_quant=Int32Bias, return_quant_tensor=False,
    )


def _float_linear(in_features: int, out_features: int, name: str, bits: int) -> nn.Module:
    return nn.Linear(in_features, out_features)


def float_vit(cfg: ViTConfig, structure: Structure) -> ViT:
    """A float ViT whose slots follow `structure` (the teacher is the all-dense one)."""
    model = ViT(cfg, slot_factory(structure, _float_linear))
    tie_shared_decoders(model, structure)
    return model


def quant_vit(cfg: ViTConfig, teacher: ViT, structure: Structure | int) -> ViT:
    """A Brevitas ViT initialised from a float model of the same structure (or, given a bit
    width, the all-dense structure at those bits)."""
    if isinstance(structure, int):
        structure = dense_structure(cfg, structure)
    student = ViT(cfg, slot_factory(structure, quant_linear))
    tie_shared_decoders(student, structure)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    # Only the quantisers' own parameters may be missing: they are learned from scratch.
    assert not unexpected, unexpected
    assert all("quant" in k for k in missing), missing
    return student
