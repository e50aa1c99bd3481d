"""Brevitas model -> integer layers (`IntLinear`): per-channel intB weights, int32 biases,
(M, S) requant, rows per image."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from brevitas.nn import QuantLinear
from torch import nn

from vitfpga.errors import DoesNotFit
from vitfpga.ir import ACC_LIMIT, IntLinear, requant_params
from vitfpga.quant.structure import layer_rows

__all__ = ["export_linear", "export_linears"]


@torch.no_grad()
def export_linear(name: str, m: QuantLinear) -> IntLinear:
    qw = m.quant_weight()
    bits = int(qw.bit_width)
    w_int = qw.int().to(torch.int64).numpy()
    w_scale = qw.scale.detach().reshape(-1).double().numpy()
    in_scale = float(m.input_quant.scale())
    out_scale = float(m.output_quant.scale())
    # Int32Bias quantises the bias at the accumulator's scale, s_x * s_w[n].
    bias = np.round(m.bias.detach().double().numpy() / (in_scale * w_scale)).astype(np.int64)
    bias = np.clip(bias, -(2**31), 2**31 - 1)
    dead = ~np.any(w_int != 0, axis=1)
    if dead.any() and not dead.all():
        # A pruned-away output row has a vanishing scale (its max |w| is 0), so a requant
        # multiplier far below 2^-31. Its weights are 0 at any scale: give it the largest live
        # scale and carry the bias Brevitas computes (at the old scale) over to the new one.
        live = np.where(dead, w_scale[~dead].max(), w_scale)
        bias = np.round(bias * w_scale / live).astype(np.int64)
        w_scale = live
    mult, shift = requant_params(in_scale * w_scale / out_scale)
    layer = IntLinear(name=name, weight=w_int, bias=bias, multiplier=mult, shift=shift,
                      relu=False, weight_bits=bits, in_scale=in_scale, w_scale=w_scale,
                      out_scale=out_scale)
    bound = layer.acc_bound()
    if bound >= ACC_LIMIT:
        raise DoesNotFit(f"layer {name}: worst-case accumulator {bound} overflows int32 "
                         f"(K={layer.k}); lower --weight-bits or shrink the layer")
    return layer


def export_linears(model: nn.Module) -> dict[str, IntLinear]:
    """Every QuantLinear of the model, in module order, keyed by its module path; for a `ViT`
    each with its rows per image from the model's config (other modules: 1 row)."""
    model.eval()
    layers = {name: export_linear(name, m) for name, m in model.named_modules()
              if isinstance(m, QuantLinear)}
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        return layers
    rows = layer_rows(cfg, list(layers))
    return {name: replace(layer, rows=rows[name]) for name, layer in layers.items()}
