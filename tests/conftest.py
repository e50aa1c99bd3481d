"""Shared test helpers: seeded random integer layers and hand-folded engine plans."""

from __future__ import annotations

from functools import cache

from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, fixed_plan
from vitfpga.ir import IntLinear
from vitfpga.quant.synthetic import random_layer, random_rows

__all__ = ["digits_like", "hand_model_plan", "random_layer", "random_rows"]


def hand_model_plan(layers: dict[str, IntLinear], pe: int, simd: int,
                    rows: int = 4) -> ModelPlan:
    """A whole-model plan on pynq-z2 with a chosen folding; every layer sees `rows` rows."""
    return fixed_plan(layers, dict.fromkeys(layers, rows), get_board("pynq-z2"), pe, simd)


@cache
def digits_like(blocks: int = 3) -> tuple[dict[str, IntLinear], dict[str, int]]:
    """A small ViT's linear layers on 8x8 digits (seeded random weights) and rows per image."""
    dims = [("patch_embed", 4, 32, 16)]
    for b in range(blocks):
        dims += [(f"blocks.{b}.attn.qkv", 32, 96, 17), (f"blocks.{b}.attn.proj", 32, 32, 17),
                 (f"blocks.{b}.mlp.fc1", 32, 64, 17), (f"blocks.{b}.mlp.fc2", 64, 32, 17)]
    dims.append(("head", 32, 10, 1))
    layers = {name: random_layer(k, n, seed=i, name=name) for i, (name, k, n, _) in enumerate(dims)}
    return layers, {name: rows for name, _, _, rows in dims}
