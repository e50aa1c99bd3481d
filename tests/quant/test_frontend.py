"""The frontend slot: how a model enters (only the built-in presets exist yet)."""

from __future__ import annotations

import pytest
import torch

from vitfpga.errors import BadInput
from vitfpga.quant.frontend import frontend_for, known_models
from vitfpga.quant.model import ViT


def test_the_preset_frontend_builds_the_float_vit_and_its_spec() -> None:
    frontend = frontend_for("vit-digits")
    assert not frontend.pretrained  # a preset is trained from scratch
    torch.manual_seed(0)
    model = frontend.float_model()
    assert isinstance(model, ViT) and model.cfg == frontend.config
    spec = frontend.spec
    assert (spec.image_size, spec.patch_size, spec.dim, spec.depth) == (8, 2, 32, 3)
    assert spec.tokens == 17 and spec.mlp_hidden == 64 and spec.num_classes == 10
    images = torch.zeros(2, spec.in_chans, spec.image_size, spec.image_size)
    assert model(images).shape == (2, spec.num_classes)


def test_an_unknown_model_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(BadInput, match=r"unknown model 'deit-huge'; known: vit-digits"):
        frontend_for("deit-huge")
    assert known_models() == ["vit-digits"]
