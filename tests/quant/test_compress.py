"""Every compression recipe end to end on a briefly trained digits ViT: the student trains,
exports to integer layers of the promised form, and the integer-only model agrees with it."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from vitfpga import runtime
from vitfpga.errors import BadInput
from vitfpga.quant.compress import calibration_images, compress, export_compressed, slot_bits
from vitfpga.quant.data import load_digits_split
from vitfpga.quant.intvit import calibrate_int_vit, host_param_bits
from vitfpga.quant.model import PRESETS, ViT
from vitfpga.quant.recipe import CompressionRecipe, Prune
from vitfpga.quant.train import accuracy, train

CFG = PRESETS["vit-digits"]
BASE = CompressionRecipe(qat_epochs=2)


@pytest.fixture(scope="module")
def teacher_split() -> tuple[ViT, object]:
    torch.set_num_threads(1)
    split = load_digits_split()
    torch.manual_seed(0)
    teacher = train(ViT(CFG), split, epochs=8, lr=3e-3, seed=0)
    return teacher, split


def _run(cfg: CompressionRecipe, teacher_split: tuple[ViT, object]) -> tuple[ViT, dict, float]:
    teacher, split = teacher_split
    student = compress(cfg, CFG, teacher, split).student
    layers = export_compressed(cfg, CFG, student)
    model = calibrate_int_vit(student, layers, split.x_train[:256])
    pred = torch.from_numpy(runtime.logits(model, split.x_test.numpy())).argmax(-1)
    agree = float((pred == student(split.x_test).argmax(-1)).float().mean())
    return student, layers, agree


def test_mixed_precision_and_post_training_quantisation(teacher_split: tuple) -> None:
    cfg = dataclasses.replace(BASE, weight_bits=3, layer_bits=(("head", 8), ("blocks.*.fc1", 2)),
                              qat_epochs=0)
    assert slot_bits(cfg, CFG)["blocks.1.mlp.fc1"] == 2
    _, layers, agree = _run(cfg, teacher_split)
    bits = {name: lay.weight_bits for name, lay in layers.items()}
    assert bits["head"] == 8 and bits["blocks.0.mlp.fc1"] == 2 and bits["blocks.0.mlp.fc2"] == 3
    assert agree >= 0.9


def test_nm_pruning_reaches_export(teacher_split: tuple) -> None:
    cfg = dataclasses.replace(BASE, prune=Prune.NM, prune_nm=(1, 4))
    _, layers, agree = _run(cfg, teacher_split)
    w = layers["blocks.0.mlp.fc2"].weight
    assert (np.count_nonzero(w.reshape(w.shape[0], -1, 4), axis=2) <= 1).all()
    head = layers["head"].weight  # not a block layer: left dense
    assert (np.count_nonzero(head.reshape(head.shape[0], -1, 4), axis=2) > 1).any()
    assert agree >= 0.9


def test_neuron_pruning_shrinks_the_mlp(teacher_split: tuple) -> None:
    cfg = dataclasses.replace(BASE, prune="neurons", prune_sparsity=0.5)
    _, layers, agree = _run(cfg, teacher_split)
    assert layers["blocks.0.mlp.fc1"].n == CFG.hidden // 2 == layers["blocks.0.mlp.fc2"].k
    assert agree >= 0.9


def test_low_rank_plus_sparse_with_compensation(teacher_split: tuple) -> None:
    cfg = dataclasses.replace(BASE, lowrank="aware", lowrank_keep=0.5, lowrank_sparse=0.05,
                              lowrank_compensate=20)
    _, layers, agree = _run(cfg, teacher_split)
    factored = [n[:-2] for n in layers if n.endswith(".u")]
    assert factored and all(f"{s}.v" in layers and f"{s}.s" in layers for s in factored)
    u, v = layers[f"{factored[0]}.u"], layers[f"{factored[0]}.v"]
    assert u.n == v.k < min(u.k, v.n)
    assert agree >= 0.9


def test_shared_decoders_export_one_decoder_per_type(teacher_split: tuple) -> None:
    cfg = dataclasses.replace(BASE, shared_ranks=(("qkv", 6), ("proj", 6), ("fc1", 8),
                                                  ("fc2", 6)))
    student, layers, agree = _run(cfg, teacher_split)
    assert layers["blocks.1.mlp.fc1.u"].n == 8 and layers["blocks.1.mlp.fc2.u"].n == 6
    for t in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
        first = layers[f"blocks.0.{t}.v"].weight
        assert all(np.array_equal(first, layers[f"blocks.{b}.{t}.v"].weight)
                   for b in range(CFG.depth))
    assert not any("parametrizations" in k or "encoder" in k for k in student.state_dict())
    _, split = teacher_split
    assert accuracy(student, split.x_test, split.y_test) > 0.2 and agree >= 0.9


def test_host_bits_follow_from_the_shapes(teacher_split: tuple) -> None:
    """The budget search prices the host parameters before any training, on an untrained
    stand-in of the same shapes: the count must not depend on the values."""
    from vitfpga.model_steps import shape_host_bits
    from vitfpga.quant.frontend import frontend_for

    teacher, split = teacher_split
    recipe = dataclasses.replace(BASE, weight_bits=8, qat_epochs=0)
    student = compress(recipe, CFG, teacher, split).student
    layers = export_compressed(recipe, CFG, student)
    trained = host_param_bits(calibrate_int_vit(student, layers, split.x_train[:256]))
    stand_in = shape_host_bits(frontend_for("vit-digits"), calibration_images(split))
    assert stand_in == trained > 0


def test_a_layer_bits_glob_that_matches_nothing_is_named(teacher_split: tuple) -> None:
    with pytest.raises(BadInput, match=re.escape("layer_bits 'blocks.*.mlp.fc9' matches no")):
        slot_bits(dataclasses.replace(BASE, layer_bits=(("blocks.*.mlp.fc9", 2),)), CFG)
