"""Importers: timm and torchvision ViTs become vitfpga's ViT with the same function and weights,
or are refused in one line naming the module path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from vitfpga.errors import BadInput
from vitfpga.quant.frontend import frontend_for, import_check
from vitfpga.quant.importers import to_vit
from vitfpga.quant.importers.tvcompat import import_timm, import_torchvision
from vitfpga.quant.model import ViT, ViTConfig

TIMM = "timm:vit_tiny_patch16_224"
TINY = {"img_size": 16, "patch_size": 4, "embed_dim": 24, "depth": 2, "num_heads": 3,
        "num_classes": 5}
TV = {"image_size": 16, "patch_size": 4, "num_layers": 2, "num_heads": 2, "hidden_dim": 16,
      "mlp_dim": 40, "num_classes": 7}


def make_tiny_vit(num_classes: int = 4, in_chans: int = 3) -> nn.Module:
    """A factory of the `package.module:factory` form: a timm VisionTransformer built directly."""
    import_timm()  # timm imports torchvision: through the shim first
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=8, patch_size=4, in_chans=in_chans, embed_dim=8, depth=1,
                             num_heads=2, mlp_ratio=3.0, num_classes=num_classes)


def make_sequential() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 3))


def make_not_a_module() -> object:
    return [1, 2]


def scramble(module: nn.Module, seed: int = 1) -> nn.Module:
    """Random values in every parameter (LayerNorm affines, layer scales, heads that libraries
    initialise to 1, 0 or 0.1 included), so a swapped or dropped weight shows in the logits."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return module


def imported(model: str, **kwargs: Any) -> tuple[ViTConfig, float, float]:
    """(config, max |logit difference|, logit range) of a scrambled source and its import."""
    frontend = frontend_for(model, **kwargs)
    source = scramble(frontend.source_model())
    vit = frontend.to_vit(source)
    cfg = frontend.config
    assert isinstance(vit, ViT) and vit.cfg == cfg
    images = torch.randn(3, cfg.in_chans, cfg.image_size, cfg.image_size,
                         generator=torch.Generator().manual_seed(2))
    check = import_check(source, vit, images)
    assert check.images == 3 and check.logit_range > 0.1
    assert check.ok, check
    return cfg, check.max_abs_diff, check.logit_range


def test_the_shim_imports_torchvision_and_timm_and_restores_register_fake() -> None:
    # A fresh interpreter: here torchvision may already be imported by another test.
    code = ("import torch\n"
            "before = torch.library.register_fake\n"
            "from vitfpga.quant.importers.tvcompat import import_timm, import_torchvision\n"
            "tv = import_torchvision()\n"
            "timm = import_timm()\n"
            "assert torch.library.register_fake is before\n"
            "print(tv.models.VisionTransformer.__name__, timm.is_model('deit_tiny_patch16_224'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["VisionTransformer", "True"]


def test_timm_token_pooling_imports_exactly() -> None:
    cfg, _, _ = imported(TIMM, model_args=TINY)
    assert (cfg.image_size, cfg.patch_size, cfg.in_chans, cfg.dim, cfg.depth, cfg.heads) == (
        16, 4, 3, 24, 2, 3)
    assert (cfg.hidden, cfg.num_classes, cfg.pool, cfg.gelu, cfg.ln_eps) == (
        96, 5, "token", "erf", 1e-6)
    assert cfg.tokens == 17 and cfg.spec().ln_eps == 1e-6


def test_timm_average_pooling_with_fc_norm_has_no_class_token() -> None:
    frontend = frontend_for(TIMM, model_args={**TINY, "global_pool": "avg", "class_token": False,
                                              "fc_norm": True})
    cfg = frontend.config
    assert cfg.pool == "avg" and cfg.tokens == 16 and "average pooling" in cfg.describe()
    vit = frontend.float_model()
    assert not hasattr(vit, "cls_token") and vit.pos_embed.shape == (1, 16, 24)
    imported(TIMM, model_args={**TINY, "global_pool": "avg", "class_token": False,
                               "fc_norm": True})


def test_timm_tanh_gelu_layer_scale_and_no_qkv_bias_import_exactly() -> None:
    cfg, _, _ = imported(TIMM, model_args={**TINY, "qkv_bias": False, "act_layer": "gelu_tanh",
                                           "init_values": 0.1}, in_chans=1)
    assert (cfg.gelu, cfg.in_chans) == ("tanh", 1) and cfg.spec().gelu == "tanh"


def test_timm_exact_gelu_and_layer_norm_eps_are_read_from_the_modules() -> None:
    cfg, _, _ = imported(TIMM, model_args={**TINY, "act_layer": "gelu",
                                           "norm_layer": nn.LayerNorm, "mlp_ratio": 2.5})
    assert (cfg.gelu, cfg.ln_eps, cfg.hidden, cfg.mlp_hidden) == ("erf", 1e-5, 60, 60)


def test_a_wrong_layer_norm_eps_would_show_in_the_check() -> None:
    frontend = frontend_for(TIMM, model_args=TINY)
    source = scramble(frontend.source_model())
    vit = frontend.to_vit(source)
    for module in vit.modules():
        if isinstance(module, nn.LayerNorm):
            module.eps = 1e-1
    check = import_check(source, vit, torch.randn(2, 3, 16, 16))
    assert not check.ok


def test_deit_tiny_imports_at_full_size() -> None:
    frontend = frontend_for("timm:deit_tiny_patch16_224")
    cfg = frontend.config
    assert (cfg.image_size, cfg.patch_size, cfg.dim, cfg.depth, cfg.heads, cfg.hidden) == (
        224, 16, 192, 12, 3, 768)
    assert (cfg.num_classes, cfg.tokens, cfg.ln_eps) == (1000, 197, 1e-6)
    assert not frontend.pretrained
    data = frontend.data_config
    assert data is not None and data.input_size == (3, 224, 224)
    assert data.mean == pytest.approx((0.485, 0.456, 0.406))
    source = frontend.source_model()
    check = import_check(source, frontend.to_vit(source),
                         torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    assert check.ok and check.images == 2 and check.logit_range > 1.0, check


def test_torchvision_vision_transformer_imports_exactly() -> None:
    cfg, _, _ = imported("torchvision:VisionTransformer", model_args=TV)
    assert (cfg.image_size, cfg.patch_size, cfg.in_chans, cfg.dim, cfg.depth, cfg.heads) == (
        16, 4, 3, 16, 2, 2)
    assert (cfg.hidden, cfg.mlp_hidden, cfg.num_classes, cfg.pool, cfg.ln_eps) == (
        40, 40, 7, "token", 1e-6)
    data = frontend_for("torchvision:VisionTransformer", model_args=TV).data_config
    assert data is not None and data.std == pytest.approx((0.229, 0.224, 0.225))


def test_torchvision_with_one_input_channel_gets_its_own_patch_conv() -> None:
    cfg, _, _ = imported("torchvision:VisionTransformer", model_args=TV, in_chans=1)
    assert cfg.in_chans == 1 and cfg.patch_dim == 16


def test_pretrained_0_is_a_fresh_model() -> None:
    assert not frontend_for(f"{TIMM}?pretrained=0", model_args=TINY).pretrained


def test_the_source_is_built_seeded_and_the_callers_rng_is_kept() -> None:
    torch.manual_seed(5)
    state = torch.random.get_rng_state()
    a = frontend_for(TIMM, model_args=TINY, seed=3).source_model()
    assert torch.equal(torch.random.get_rng_state(), state)
    b = frontend_for(TIMM, model_args=TINY, seed=3).source_model()
    c = frontend_for(TIMM, model_args=TINY, seed=4).source_model()
    assert torch.equal(a.pos_embed, b.pos_embed) and not torch.equal(a.pos_embed, c.pos_embed)
    assert not a.training  # built in eval mode


def test_to_vit_carries_the_current_weights_of_a_trained_source() -> None:
    frontend = frontend_for(TIMM, model_args=TINY)
    source = frontend.source_model()
    before = frontend.to_vit(source).head.weight.clone()
    with torch.no_grad():
        source.head.weight.add_(1.0)
    assert torch.allclose(frontend.to_vit(source).head.weight, before + 1.0)
    assert torch.equal(frontend.source_model().head.weight, before)  # the built one is kept


def _refusal(model: str, **kwargs: Any) -> str:
    with pytest.raises(BadInput) as info:
        frontend_for(model, **kwargs)
    text = str(info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(("args", "path", "what"), [
    ({"qk_norm": True}, "blocks.0.attn.q_norm", "qk-norm"),
    ({"reg_tokens": 1}, "reg_token", "register tokens"),
    ({"no_embed_class": True}, "pos_embed", "no_embed_class"),
    ({"global_pool": "avg"}, "cls_token", "average pooling with a class token"),
    ({"global_pool": "avg", "class_token": False, "fc_norm": False}, "norm", "fc_norm"),
    ({"global_pool": "map"}, "attn_pool", "attention pooling"),
    ({"pre_norm": True}, "norm_pre", "pre_norm"),
    ({"dynamic_img_size": True}, "patch_embed", "dynamic_img_size"),
    ({"act_layer": "quick_gelu"}, "blocks.0.mlp.act", "QuickGELU"),
    ({"scale_mlp_norm": True}, "blocks.0.mlp.norm", "norm inside the MLP"),
    ({"img_size": (16, 8)}, "patch_embed", "square images"),
    ({"img_size": 18}, "patch_embed", "not a multiple of the patch size 4"),
    ({"global_pool": ""}, "<model>", "global_pool=''"),
    ({"num_classes": 0}, "head", "a Linear classifier head"),
    ({"final_norm": False}, "norm", "without a final LayerNorm"),
])
def test_timm_options_vitfpga_does_not_compute_are_refused_with_the_path(
        args: dict[str, Any], path: str, what: str) -> None:
    text = _refusal(TIMM, model_args={**TINY, **args})
    assert text.startswith(f"{TIMM}: cannot import {path}: ") and what in text


def test_timm_block_and_mlp_variants_are_refused_with_the_path() -> None:
    import_timm()
    from timm.layers import DiffAttention, SwiGLU
    from timm.models.vision_transformer import ParallelScalingBlock

    text = _refusal(TIMM, model_args={**TINY, "mlp_layer": SwiGLU})
    assert "cannot import blocks.0.mlp: SwiGLU" in text
    text = _refusal(TIMM, model_args={**TINY, "block_fn": ParallelScalingBlock})
    assert "cannot import blocks.0: ParallelScalingBlock" in text
    text = _refusal(TIMM, model_args={**TINY, "attn_layer": DiffAttention})
    assert "cannot import blocks.0.attn: DiffAttention" in text


def test_distilled_deit_and_non_vits_are_refused() -> None:
    text = _refusal("timm:deit_tiny_distilled_patch16_224", model_args={"img_size": 32})
    assert "cannot import <model>: distilled DeiT" in text and "non-distilled" in text
    text = _refusal("timm:convnext_atto", num_classes=3)
    assert "cannot import <model>: timm ConvNeXt is not a VisionTransformer" in text
    text = _refusal("tests.quant.test_importers:make_sequential")
    assert "cannot import <model>: Sequential is not a Vision Transformer" in text


def test_torchvision_conv_stem_and_pre_logits_are_refused_with_the_path() -> None:
    tv = import_torchvision()
    stem = [tv.models.vision_transformer.ConvStemConfig(out_channels=8, kernel_size=3, stride=4)]
    text = _refusal("torchvision:VisionTransformer", model_args={**TV, "conv_stem_configs": stem})
    assert "cannot import conv_proj: a convolutional stem" in text
    text = _refusal("torchvision:VisionTransformer",
                    model_args={**TV, "representation_size": 8})
    assert "cannot import heads.pre_logits:" in text


@pytest.mark.parametrize(("model", "kwargs", "what"), [
    ("timm:no_such_vit", {}, "unknown timm model 'no_such_vit'"),
    ("torchvision:no_such_vit", {}, "unknown torchvision model 'no_such_vit'"),
    (TIMM, {"model_args": {"bogus": 1}}, "cannot build it with model_args"),
    ("torchvision:VisionTransformer", {"model_args": {"image_size": 16}}, "cannot build it"),
    (f"{TIMM}?colour=1", {}, "only ?pretrained=1"),
    ("torchvision:vit_b_16?pretrained=1", {"in_chans": 1}, "take 3 input channels, not 1"),
    ("tests.quant.test_importers:make_tiny_vit?pretrained=1", {}, "give a factory's weights"),
    ("tests.quant.no_such_module:f", {}, "cannot import module 'tests.quant.no_such_module'"),
    ("tests.quant.test_importers:nothing", {}, "has no callable 'nothing'"),
    ("tests.quant.test_importers:make_not_a_module", {}, "returned a list, not an nn.Module"),
    ("not a model", {}, "unknown model 'not a model'"),
])
def test_bad_names_and_arguments_are_one_line(model: str, kwargs: dict[str, Any],
                                              what: str) -> None:
    assert what in _refusal(model, **kwargs)


def test_a_factory_path_builds_the_users_module_with_the_run_classes() -> None:
    frontend = frontend_for("tests.quant.test_importers:make_tiny_vit", num_classes=6,
                            in_chans=1)
    cfg = frontend.config
    assert (cfg.image_size, cfg.patch_size, cfg.in_chans, cfg.dim, cfg.hidden) == (8, 4, 1, 8, 24)
    assert cfg.num_classes == 6 and cfg.mlp_ratio == 3 and cfg.mlp_hidden == 0
    imported("tests.quant.test_importers:make_tiny_vit", model_args={"num_classes": 2})


def _saved(tmp_path: Path, suffix: str, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": state} if suffix == ".pth" else state, path)
    return path


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_weights_round_trip_into_the_source(tmp_path: Path, suffix: str) -> None:
    trained = scramble(frontend_for(TIMM, model_args=TINY).source_model(), seed=7)
    path = _saved(tmp_path, suffix, trained.state_dict())
    frontend = frontend_for(TIMM, model_args=TINY, weights=str(path), seed=9)
    assert frontend.pretrained
    vit = frontend.float_model()
    images = torch.randn(2, 3, 16, 16)
    assert torch.allclose(vit(images), to_vit(trained)(images), atol=1e-5)
    assert not torch.allclose(vit(images), frontend_for(TIMM, model_args=TINY,
                                                        seed=9).float_model()(images))


def test_mismatched_or_broken_weights_are_one_line_naming_file_and_key(tmp_path: Path) -> None:
    other = frontend_for(TIMM, model_args={**TINY, "embed_dim": 12}).source_model().state_dict()
    path = _saved(tmp_path, ".pt", other)
    text = _refusal(TIMM, model_args=TINY, weights=str(path))
    assert text.startswith(f"weights {path}: cls_token has shape (1, 1, 12)")
    state = frontend_for(TIMM, model_args=TINY).source_model().state_dict()
    missing = _saved(tmp_path, ".safetensors", {k: v for k, v in state.items() if k != "head.bias"})
    assert "missing key head.bias" in _refusal(TIMM, model_args=TINY, weights=str(missing))
    extra = _saved(tmp_path, ".pt", {**state, "extra.weight": torch.zeros(2)})
    assert "unexpected key extra.weight" in _refusal(TIMM, model_args=TINY, weights=str(extra))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    assert f"weights {corrupt}: cannot read it" in _refusal(TIMM, model_args=TINY,
                                                           weights=str(corrupt))
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listed)
    assert "not a state dict" in _refusal(TIMM, model_args=TINY, weights=str(listed))
    assert "no such file" in _refusal(TIMM, model_args=TINY, weights=str(tmp_path / "x.pt"))
    assert ".safetensors state dict" in _refusal(TIMM, model_args=TINY, weights="w.bin")
