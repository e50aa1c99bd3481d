"""The integer model and its forward pass, numpy only: one implementation for vitfpga's golden
model on the host and for the generated PYNQ driver on a board's ARM core (which has no torch).

Relocatable: only numpy, the standard library and relative imports, Python 3.8 syntax, so the
driver copies this folder verbatim into its own package (`<driver>.runtime`).

    from . import runtime
    model = runtime.load_model("model.npz")          # what IntModel.save writes, validated
    logits = runtime.logits(model, images)           # (B, C, H, W) float -> (B, classes) int64
    logits = runtime.logits(model, images, linear=engine.run_layer)   # linear layers elsewhere
"""

from __future__ import annotations

from .forward import logits, patchify, quantise_images
from .model import (
    ACC_LIMIT,
    IntLinear,
    IntModel,
    ModelSpec,
    linear_golden,
    load_model,
    requant_params,
    slot_layers,
    weight_owners,
)

__all__ = ["ACC_LIMIT", "IntLinear", "IntModel", "ModelSpec", "linear_golden", "load_model",
           "logits", "patchify", "quantise_images", "requant_params", "slot_layers",
           "weight_owners"]
