"""The ViT presets and the layer list the planner relies on."""

import torch
from torch import nn

from vitfpga.quant.model import HARDWARE_PRESETS, PRESETS, ViT, linear_shapes


def test_linear_shapes_match_the_module() -> None:
    cfg = PRESETS["vit-digits"]
    model = ViT(cfg)
    modules = [(name, m.in_features, m.out_features) for name, m in model.named_modules()
               if isinstance(m, nn.Linear)]
    assert modules == [(name, k, n) for name, k, n, _ in linear_shapes(cfg)]
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_deit_dimensions() -> None:
    tiny, small = HARDWARE_PRESETS["deit-tiny"], HARDWARE_PRESETS["deit-small"]
    assert (tiny.dim, tiny.depth, tiny.tokens, tiny.hidden) == (192, 12, 197, 768)
    assert (small.dim, small.heads, small.hidden) == (384, 6, 1536)
    params = sum(k * n + n for _, k, n, _ in linear_shapes(tiny))
    assert 5.5e6 < params < 5.8e6  # DeiT-Tiny's 5.7M parameters are almost all linear
