"""Sizes in real bits: each layer in the codec that stores it, shared weights once, tables
counted."""

from __future__ import annotations

import dataclasses

import torch

from tests.conftest import random_layer
from vitfpga.ir import encode_layers
from vitfpga.quant.codecs import nm_encode, packed_bytes
from vitfpga.quant.model import PRESETS, ViT
from vitfpga.quant.size import TABLE_BITS, float_bits, model_size


def _size(layer, codec: str | None = None) -> int:
    layers = {layer.name: layer} if codec is None else encode_layers({layer.name: layer},
                                                                     {layer.name: codec})
    return model_size(ViT(PRESETS["vit-digits"]), layers, host_bits=0).weight_bits


def test_each_layer_counts_in_its_own_codec() -> None:
    w = random_layer(16, 8, bits=4, seed=1)
    assert _size(w) == packed_bytes(w.weight, 4) * 8 == 16 * 8 * 4
    sparse = random_layer(16, 8, bits=4, seed=2, codec="nm:1:4")
    # 1:4 at 4 bits: one 4-bit value and a 2-bit position per group of 4
    assert _size(sparse) == nm_encode(sparse.weight, 1, 4, 4).encoded_bits == 8 * 4 * 6
    assert _size(sparse, "dense") == 16 * 8 * 4
    table = random_layer(16, 8, bits=8, seed=3, codec="codebook:2")
    assert _size(table) == 16 * 8 * 2 + 4 * 8  # indices and the 4-entry int8 table
    # export stores each layer in its cheapest exact codec, and that is what is counted
    chosen = encode_layers({"a": dataclasses.replace(table, codec="dense")})
    assert chosen["a"].codec == "codebook:2"


def test_shared_weights_count_once_and_tables_per_channel() -> None:
    a = random_layer(12, 10, bits=4, seed=3, name="blocks.0.mlp.fc1.v")
    b = dataclasses.replace(random_layer(12, 10, bits=4, seed=4, name="blocks.1.mlp.fc1.v"),
                            weight=a.weight.copy())
    teacher = ViT(PRESETS["vit-digits"])
    size = model_size(teacher, {a.name: a, b.name: b}, host_bits=1000)
    assert size.weight_bits == a.weight.size * 4
    assert size.codecs[b.name].endswith("(shared)")
    assert size.table_bits == 20 * TABLE_BITS == 20 * 72
    assert size.total_bits == size.weight_bits + 1440 + 1000
    assert size.ratio == size.fp32_bits / size.total_bits


def test_float_bits_count_pruned_weights_as_a_bitmap() -> None:
    model = ViT(PRESETS["vit-digits"])
    total, weights = float_bits(model)
    assert total == 32 * sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        model.head.weight.zero_()
    _, pruned = float_bits(model)
    assert pruned == weights - 32 * model.head.weight.numel() + model.head.weight.numel()
