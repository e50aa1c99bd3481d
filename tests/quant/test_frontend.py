"""The frontend slot: how a model enters (the built-in presets here; imported timm and
torchvision models in test_importers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vitfpga.errors import BadInput
from vitfpga.quant.frontend import frontend_for, known_models
from vitfpga.quant.model import ViT, ViTConfig


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


def test_a_preset_source_is_its_own_vit_and_has_no_data_config() -> None:
    frontend = frontend_for("vit-digits", num_classes=10, in_chans=1)
    assert frontend == frontend_for("vit-digits")  # the preset's own values change nothing
    assert frontend.data_config is None  # the dataset's own normalisation
    torch.manual_seed(0)
    source = frontend.source_model()
    assert frontend.to_vit(source) is source
    torch.manual_seed(0)
    assert torch.equal(frontend.float_model().pos_embed, source.pos_embed)


def test_preset_fields_can_be_replaced_and_unknown_ones_are_refused() -> None:
    frontend = frontend_for("vit-digits", model_args={"depth": 2}, num_classes=3, in_chans=3)
    cfg = frontend.config
    assert (cfg.depth, cfg.num_classes, cfg.in_chans, cfg.dim) == (2, 3, 3, 32)
    with pytest.raises(BadInput, match=r"vit-digits: unknown model_args colour"):
        frontend_for("vit-digits", model_args={"colour": 1})
    with pytest.raises(BadInput, match=r"vit-digits: model_args: ViTConfig pool 'max'"):
        frontend_for("vit-digits", model_args={"pool": "max"})


def test_preset_weights_make_it_pretrained(tmp_path: Path) -> None:
    torch.manual_seed(3)
    trained = ViT(frontend_for("vit-digits").config)
    torch.save(trained.state_dict(), tmp_path / "digits.pt")
    frontend = frontend_for("vit-digits", weights=str(tmp_path / "digits.pt"))
    assert frontend.pretrained
    assert torch.equal(frontend.float_model().pos_embed, trained.pos_embed)
    torch.save({"head.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(BadInput, match=r"bad.pt: head.weight has shape \(1,\)"):
        frontend_for("vit-digits", weights=str(tmp_path / "bad.pt"))


def test_the_config_carries_pooling_eps_gelu_and_mlp_width_into_the_spec() -> None:
    cfg = ViTConfig(dim=16, heads=2, mlp_hidden=40, ln_eps=1e-6, gelu="tanh", pool="avg")
    assert (cfg.hidden, cfg.tokens, cfg.num_patches) == (40, 16, 16)
    spec = cfg.spec()
    assert (spec.mlp_hidden, spec.pool, spec.ln_eps, spec.gelu, spec.tokens) == (
        40, "avg", 1e-6, "tanh", 16)
    assert cfg.describe().endswith("MLP 40, 10 classes, average pooling, LayerNorm eps 1e-06, "
                                   "tanh GELU")
    torch.manual_seed(0)
    model = ViT(cfg)
    assert "cls_token" not in dict(model.named_parameters())
    assert model.pos_embed.shape == (1, 16, 16) and model.blocks[0].mlp.fc1.out_features == 40
    assert model.norm.eps == 1e-6 and model.blocks[0].mlp.act.approximate == "tanh"
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"ViTConfig gelu 'relu'"):
        ViTConfig(gelu="relu")
