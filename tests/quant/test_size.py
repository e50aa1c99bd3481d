"""Sizes in real bits: the cheapest exact codec per layer, shared weights once, tables counted."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from tests.conftest import random_layer
from vitfpga.quant.codecs import nm_encode, nm_prune, packed_bytes
from vitfpga.quant.model import PRESETS, ViT
from vitfpga.quant.size import TABLE_BITS, float_bits, model_size, weight_codec


def test_dense_weights_use_the_packed_codec() -> None:
    w = random_layer(16, 8, bits=4, seed=1).weight
    w[w == 0] = 1  # no zeros: nothing for a sparse codec to gain
    assert weight_codec(w, 4) == ("dense", packed_bytes(w, 4) * 8)


def test_one_of_four_sparse_weights_use_nm() -> None:
    w = random_layer(16, 8, bits=4, seed=2).weight
    w[w == 0] = 1
    w = nm_prune(w, 1, 4)
    codec, bits = weight_codec(w, 4)
    # 1:4 at 4 bits: 6 bits per group of 4; a bitmap would take 4 + 4 bits per group.
    assert codec == "nm1:4" and bits == nm_encode(w, 1, 4, 4).encoded_bits == 8 * 4 * 6


def test_very_sparse_weights_use_a_bitmap() -> None:
    w = np.zeros((8, 30), dtype=np.int64)  # K=30: no N:M group fits, one non-zero
    w[3, 7] = 5
    assert weight_codec(w, 8) == ("bitmap", 240 + 8)
    ternary = np.zeros((8, 30), dtype=np.int64)
    ternary[:, :10] = 1
    ternary[:, 10:20] = -1  # two thirds non-zero, yet 1 + 2/3 bits beat 2 dense bits
    assert weight_codec(ternary, 2) == ("bitmap", 240 + 160)


def test_shared_weights_count_once_and_tables_per_channel() -> None:
    a = random_layer(12, 10, bits=4, seed=3, name="blocks.0.mlp.fc1.v")
    b = dataclasses.replace(random_layer(12, 10, bits=4, seed=4, name="blocks.1.mlp.fc1.v"),
                            weight=a.weight.copy())
    teacher = ViT(PRESETS["vit-digits"])
    size = model_size(teacher, {a.name: a, b.name: b}, host_bits=1000)
    assert size.weight_bits == weight_codec(a.weight, 4)[1]
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
