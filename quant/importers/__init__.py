"""Importers: a user's PyTorch ViT (timm VisionTransformer / DeiT, torchvision
VisionTransformer, or vitfpga's own ViT) -> vitfpga's ViT computing the same function with the
same weights. Training, compression and export only ever see vitfpga's ViT; what it cannot compute
is refused in one line naming the module path, before any training.

timm and torchvision are imported only for a module of theirs, through `tvcompat`.
"""

from __future__ import annotations

import torch
from torch import nn

from vitfpga.errors import BadInput
from vitfpga.quant.importers.common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataConfig,
    ImportCheck,
    State,
    Unsupported,
    channel_stats,
    import_check,
)
from vitfpga.quant.importers.timm_vit import is_timm_model, timm_import
from vitfpga.quant.importers.torchvision_vit import is_torchvision_model, torchvision_import
from vitfpga.quant.importers.weights import load_weights, read_state_dict
from vitfpga.quant.model import ViT, ViTConfig

__all__ = ["DataConfig", "ImportCheck", "data_config_for", "import_check", "import_source",
           "load_weights", "read_state_dict", "source_config", "to_vit"]


def _own_vit(source: nn.Module) -> tuple[ViTConfig, State]:
    """vitfpga's own float ViT (e.g. from a factory) imports as itself."""
    for name, module in source.named_modules():
        if isinstance(module, nn.Linear) and type(module) is not nn.Linear:
            raise Unsupported(name, f"{type(module).__name__}: a float ViT with nn.Linear layers "
                                    "only")
    return source.cfg, {k: v.detach() for k, v in source.state_dict().items()}


def _import(source: nn.Module) -> tuple[ViTConfig, State]:
    if type(source) is ViT:
        return _own_vit(source)
    if is_timm_model(source):
        return timm_import(source)
    if is_torchvision_model(source):
        return torchvision_import(source)
    raise Unsupported("", f"{type(source).__name__} is not a Vision Transformer vitfpga imports: "
                          "timm VisionTransformer (ViT, DeiT), torchvision VisionTransformer or "
                          "vitfpga's ViT")


def import_source(source: nn.Module, label: str = "model") -> tuple[ViTConfig, State]:
    """(our ViT's config, its state dict) for `source`; BadInput naming `label` and the module
    path of the first thing vitfpga's ViT does not compute."""
    try:
        return _import(source)
    except Unsupported as exc:
        raise BadInput(f"{label}: cannot import {exc.path}: {exc.what}") from None


def source_config(source: nn.Module, label: str = "model") -> ViTConfig:
    return import_source(source, label)[0]


def to_vit(source: nn.Module, label: str = "model") -> ViT:
    """vitfpga's float ViT (on the CPU, float32) carrying `source`'s current weights."""
    cfg, state = import_source(source, label)
    with torch.random.fork_rng(devices=[]):  # building the ViT draws; the caller's RNG is kept
        vit = ViT(cfg)
    vit.load_state_dict({k: v.detach().to("cpu", torch.float32) for k, v in state.items()})
    return vit.train(source.training)


def data_config_for(source: nn.Module, cfg: ViTConfig) -> DataConfig | None:
    """The input `source` expects: the config's image size; the normalisation of its timm
    pretrained config (timm), else ImageNet's (torchvision and timm without one). None for
    vitfpga's own ViT (the dataset's own normalisation)."""
    if type(source) is ViT:
        return None
    stats: dict[str, object] = {}
    if is_timm_model(source):
        stats = dict(getattr(source, "pretrained_cfg", None) or {})
    mean = tuple(stats.get("mean") or IMAGENET_MEAN)  # type: ignore[arg-type]
    std = tuple(stats.get("std") or IMAGENET_STD)  # type: ignore[arg-type]
    return DataConfig(input_size=(cfg.in_chans, cfg.image_size, cfg.image_size),
                      mean=channel_stats(mean, cfg.in_chans), std=channel_stats(std, cfg.in_chans))
