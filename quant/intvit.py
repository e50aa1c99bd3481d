"""Calibration of the integer-only ViT: the golden model the hardware must match, every op in
integers.

`calibrate_int_vit` folds a QAT model into an `IntModel` (vitfpga.runtime's one contract); its
forward pass is `vitfpga.runtime.logits` (numpy only, the one Python implementation, which the
generated PYNQ driver copies to the board). The image is quantised once (int8 at the patch
embedding's input scale, round half to even as Brevitas does); from there on the forward is
integer arithmetic only. Linear layers run through the runtime's `linear_golden` or a caller's
`linear(name, rows)` (RTL, board). The rest is `runtime.intmath` (re-exported by
`quant.intops`), with parameters folded here, at calibration:

- Residual stream: int16, per stage (the input of each LayerNorm) its own per-tensor scale,
  `2 * max|x| / 32767` from calibration images (2x headroom: int16 has the bits to spare, and a
  test image may exceed the training maximum). Adds rescale each term by the one rule, saturate.
- LayerNorm: integer mean/variance/sqrt, int8 output directly at the next linear layer's
  `in_scale`, so no hop is needed there.
- Attention: q, k, v are int8 at the qkv output scale `s`; scores `q·k` are exact int64 at
  `s^2/sqrt(hd)`; the softmax gives probabilities 0..`prob_max` (default 127, int8 at 1/127) by
  a shift + 256-entry 2^-x ROM (see `intmath.int_softmax`); `p·v` is exact and requantised to
  int8 at proj's `in_scale`.
- GELU: a 256-entry int8 -> int8 ROM from fc1's output scale to fc2's input scale.
- Factored slots: `u` then `v` (a one-rule hop between them only when Brevitas' two quantisers
  disagree), and the sparse `s` on the same input; `v + s` is an int8 add at a calibrated
  max-abs scale.
- Pooling: the class token, or the integer mean of the tokens (a ViT without one); the final
  LayerNorm's residual scale then covers every token, not only the mean.
- Head: its int8 output is the logits (returned as int64).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from vitfpga.ir import IntLinear, IntModel
from vitfpga.quant import intops as iop
from vitfpga.quant.model import ViT, ViTConfig
from vitfpga.runtime import slot_layers

__all__ = ["calibrate_int_vit", "host_param_bits", "slot_layers"]

RES_BITS = 16
RES_HEADROOM = 2.0
PROB_MAX = 127


# ---- calibration -------------------------------------------------------------------------

@torch.no_grad()
def _ranges(model: nn.Module, images: torch.Tensor, sums: list[str]) -> dict[str, float]:
    """max|x| of every LayerNorm input (the residual stages) and of every sparse slot's sum."""
    seen: dict[str, float] = {}

    def note(key: str, t: torch.Tensor) -> None:
        seen[key] = max(seen.get(key, 0.0), float(t.detach().abs().max()))

    handles = [m.register_forward_pre_hook(lambda _m, a, key=n: note(key, a[0]))
               for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)]
    handles += [model.get_submodule(s).register_forward_hook(
        lambda _m, _a, out, key=s: note(key, out)) for s in sums]
    if model.cfg.pool != "token":
        # Average pooling: the final LayerNorm sees the tokens' mean, but the last residual
        # add writes every token at that stage's scale, so its range is the tokens' own.
        handles.append(model.blocks[-1].register_forward_hook(
            lambda _m, _a, out: note("norm", out)))
    try:
        model.eval()
        for i in range(0, len(images), 256):
            model(images[i:i + 256])
    finally:
        for h in handles:
            h.remove()
    return seen


def _slots(cfg: ViTConfig) -> Iterator[str]:
    yield "patch_embed"
    for b in range(cfg.depth):
        yield from (f"blocks.{b}.attn.qkv", f"blocks.{b}.attn.proj", f"blocks.{b}.mlp.fc1",
                    f"blocks.{b}.mlp.fc2")
    yield "head"


def _pair(real: float) -> np.ndarray:
    return np.array(iop.rescale_params(real), dtype=np.int32)


@torch.no_grad()
def calibrate_int_vit(qat_model: ViT, layers: dict[str, IntLinear], images: torch.Tensor,
                      prob_max: int = PROB_MAX) -> IntModel:
    """The integer model of `qat_model` with its exported `layers`: the non-linear parameters
    folded into integers, with the scales of the tensors that have no quantiser calibrated on
    `images` (training images)."""
    cfg: ViTConfig = qat_model.cfg
    sparse = [s for s in _slots(cfg) if len(slot_layers(layers, s)) == 3]
    ranges = _ranges(qat_model, images, sparse)
    scales = {f"res.{k}": RES_HEADROOM * max(v, 1e-8) / (2 ** (RES_BITS - 1) - 1)
              for k, v in ranges.items() if k not in sparse}
    scales |= {f"{s}.sum": max(ranges[s], 1e-8) / 127 for s in sparse}
    p: dict[str, np.ndarray] = {"meta": np.array([RES_BITS, prob_max], dtype=np.int32),
                                "softmax.exp2_lut": iop.EXP2_LUT}

    def in_scale(slot: str) -> float:
        return layers[slot_layers(layers, slot)[0]].in_scale

    def out_scale(slot: str) -> float:
        names = slot_layers(layers, slot)
        return scales[f"{slot}.sum"] if len(names) == 3 else layers[names[-1]].out_scale

    for slot in _slots(cfg):
        names = slot_layers(layers, slot)
        if len(names) == 1:
            continue
        u, v = layers[names[0]], layers[names[1]]
        if u.out_scale != v.in_scale:  # two Brevitas quantisers: rescale by the one rule
            p[f"hop.{v.name}"] = _pair(u.out_scale / v.in_scale)
        if len(names) == 3:
            s_layer = layers[names[2]]
            if s_layer.in_scale != u.in_scale:
                p[f"hop.{s_layer.name}"] = _pair(u.in_scale / s_layer.in_scale)
            p[f"{slot}.sum"] = iop.add_params([v.out_scale, s_layer.out_scale],
                                              scales[f"{slot}.sum"])

    def ln(name: str, res: float, out: float) -> None:
        m = qat_model.get_submodule(name)
        lp = iop.layernorm_params(m.weight.double().numpy(), m.bias.double().numpy(), m.eps,
                                  res, out)
        p.update({f"{name}.{k}": a for k, a in lp.to_arrays().items()})

    res0 = scales["res.blocks.0.norm1"]
    lim = 2 ** (RES_BITS - 1) - 1
    as_res = lambda t: np.clip(np.round(t.double().numpy() / res0), -lim, lim)  # noqa: E731
    p["embed.pos"] = as_res(qat_model.pos_embed[0]).astype(np.int16)
    if cfg.pool == "token":
        p["embed.cls"] = as_res(qat_model.cls_token.reshape(-1)).astype(np.int16)
    p["embed.add"] = iop.add_params([out_scale("patch_embed"), res0], res0)
    hd = cfg.dim // cfg.heads
    for b in range(cfg.depth):
        pre = f"blocks.{b}"
        nxt = f"res.blocks.{b + 1}.norm1" if b + 1 < cfg.depth else "res.norm"
        r1, r2, r3 = scales[f"res.{pre}.norm1"], scales[f"res.{pre}.norm2"], scales[nxt]
        s_qkv = out_scale(f"{pre}.attn.qkv")
        ln(f"{pre}.norm1", r1, in_scale(f"{pre}.attn.qkv"))
        p[f"{pre}.attn.softmax"] = np.array(iop.softmax_params(s_qkv**2 / math.sqrt(hd)),
                                            dtype=np.int32)
        p[f"{pre}.attn.out"] = _pair(s_qkv / (prob_max * in_scale(f"{pre}.attn.proj")))
        p[f"{pre}.add1"] = iop.add_params([r1, out_scale(f"{pre}.attn.proj")], r2)
        ln(f"{pre}.norm2", r2, in_scale(f"{pre}.mlp.fc1"))
        p[f"{pre}.mlp.gelu"] = iop.gelu_lut(out_scale(f"{pre}.mlp.fc1"),
                                            in_scale(f"{pre}.mlp.fc2"), cfg.gelu)
        p[f"{pre}.add2"] = iop.add_params([r2, out_scale(f"{pre}.mlp.fc2")], r3)
    ln("norm", scales["res.norm"], in_scale("head"))
    return IntModel(spec=cfg.spec(), layers=dict(layers), params=p, scales=scales)


# ---- size --------------------------------------------------------------------------------

def host_param_bits(model: IntModel) -> int:
    """Bits of every stored parameter that is not a linear layer's: LayerNorm, cls, pos,
    ROMs, rescale pairs (at their stored integer widths) and the real scales (64 bits)."""
    return sum(a.size * a.dtype.itemsize * 8 for a in model.params.values()) + 64 * len(
        model.scales)
