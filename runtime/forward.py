"""The integer-only ViT forward pass: the golden model the hardware must match, in numpy.

The image is quantised once (int8 at the patch embedding's input scale, round half to even as
Brevitas does, in float32); from there on every step is integer arithmetic (`intmath`):

- Linear layers run through `linear(name, rows)`: `linear_golden` on the CPU by default, the
  engine (RTL simulation, a board's FPGA) when a caller passes its own.
- Residual stream: int16 (the model's `res_bits`), each stage at its own calibrated scale; adds
  rescale each term by the one rule and saturate.
- LayerNorm: integer mean/variance/sqrt, int8 output directly at the next layer's input scale.
- Attention: q, k, v int8; scores `q·k` exact; softmax to 0..`prob_max` by a shift and the
  2^-x ROM; `p·v` exact, requantised to int8 at proj's input scale. The head count comes from
  qkv's width, so structurally pruned heads need nothing else.
- GELU: a 256-entry int8 -> int8 ROM.
- Factored slots: `u` then `v` (a one-rule hop between them where the model stores one), and a
  sparse `s` on the same input whose output is int8-added to `v`'s (`<slot>.sum`).
- Pooling: the class token's row (`pool` "token"), or, for a ViT without a class token
  (`pool` "avg"), the integer mean of every token (`int_mean`, at the residual's scale); then
  the final LayerNorm.
- Head: its int8 output is the logits, returned as int64.

Everything is vectorised over images, tokens and heads: one matmul per layer and per product.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .intmath import (
    int_add,
    int_layernorm,
    int_matmul,
    int_mean,
    int_softmax,
    lut_apply,
    requantize,
)
from .model import IntModel, linear_golden, slot_layers

__all__ = ["IDENTITY", "logits", "patchify", "quantise_images"]

# (M, S) of the real factor 1.0 (`rescale_params(1.0)`): exact, (x * 2^30 + 2^29) >> 30 == x
IDENTITY = (1 << 30, 30)


def patchify(images: object, patch: int) -> np.ndarray:
    """(B, C, H, W) -> (B, num_patches, C*patch*patch), row-major patches, each patch's values
    channel-major then row-major: the order `vitfpga.quant.model.patchify` gives the float ViT."""
    x = np.asarray(images)
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.transpose(0, 2, 4, 1, 3, 5).reshape(b, -1, c * patch * patch)


def quantise_images(images: object, patch: int, scale: float) -> np.ndarray:
    """The one float -> int step: (B, C, H, W) float images -> (B, N, K) int8 patch values as
    int64, `clamp(round(patch / scale))` computed in float32 as Brevitas' input quantiser does
    (one correctly rounded float32 division, round half to even)."""
    patches = patchify(np.asarray(images, dtype=np.float32), patch)
    q = np.round(patches / np.float32(scale))
    return np.clip(q, -128, 127).astype(np.int64)


def logits(model: IntModel, images: object,
           linear: Callable[[str, np.ndarray], np.ndarray] | None = None,
           record: dict[str, list[np.ndarray]] | None = None) -> np.ndarray:
    """(B, C, H, W) float images -> (B, classes) int64 logits (the head's int8 output).

    `linear(name, rows)` runs one linear layer: int8 rows (M, K) as an int64 array in, int8 rows
    (M, N) (any integer dtype) out; None is `linear_golden`. `record`, when given, collects each
    linear layer's int8 input rows (as int8 arrays) by layer name, one array per call."""
    return _Forward(model, linear, record).run(images)


class _Forward:
    def __init__(self, model: IntModel, linear: Callable[[str, np.ndarray], np.ndarray] | None,
                 record: dict[str, list[np.ndarray]] | None) -> None:
        model.spec.validate()  # pool, GELU: what this pass does not compute is refused here
        self.m, self.p, self.linear_fn, self.record = model, model.params, linear, record

    def linear(self, name: str, rows: np.ndarray) -> np.ndarray:
        layer = self.m.layers[name]
        hop = self.p.get(f"hop.{name}")
        if hop is not None:  # two quantisers between u and v disagree: rescale by the one rule
            rows = requantize(rows, int(hop[0]), int(hop[1]))
        rows = np.asarray(rows, dtype=np.int64)
        if self.record is not None:
            self.record.setdefault(name, []).append(rows.astype(np.int8))
        if self.linear_fn is None:
            return linear_golden(rows, layer)
        y = np.asarray(self.linear_fn(name, rows), dtype=np.int64)
        if y.shape != (rows.shape[0], layer.n):
            raise ValueError(f"{name}: the linear backend returned shape {y.shape}, expected "
                             f"{(rows.shape[0], layer.n)}")
        return y

    def slot(self, slot: str, rows: np.ndarray) -> np.ndarray:
        names = slot_layers(self.m.layers, slot)
        if len(names) == 1:
            return self.linear(slot, rows)
        y = self.linear(names[1], self.linear(names[0], rows))
        if len(names) == 3:
            y = int_add([y, self.linear(names[2], rows)], self.p[f"{slot}.sum"], 8)
        return y

    def ln(self, name: str, x: np.ndarray) -> np.ndarray:
        return int_layernorm(x, self.p[f"{name}.gamma"], self.p[f"{name}.beta"],
                             self.p[f"{name}.meta"])

    def run(self, images: object) -> np.ndarray:
        spec = self.m.spec
        q = quantise_images(images, spec.patch_size, self.m.input_scale())
        b, n, k = q.shape
        x = self.embed(self.slot("patch_embed", q.reshape(b * n, k)).reshape(b, n, -1))
        for i in range(spec.depth):
            x = self.block(i, x)
        pooled = x[:, 0] if spec.pool == "token" else int_mean(x, axis=1)
        return self.slot("head", self.ln("norm", pooled))

    def embed(self, pe: np.ndarray) -> np.ndarray:
        pos = np.asarray(self.p["embed.pos"], dtype=np.int64)
        bits = self.m.res_bits
        if self.m.spec.pool != "token":  # no class token: every row is a patch
            return int_add([pe, pos], self.p["embed.add"], bits)
        cls = np.asarray(self.p["embed.cls"], dtype=np.int64)
        cls = int_add([cls, pos[0]], np.array([IDENTITY, IDENTITY], dtype=np.int64), bits)
        tokens = int_add([pe, pos[1:]], self.p["embed.add"], bits)
        cls_rows = np.broadcast_to(cls, (pe.shape[0], 1, cls.shape[-1]))
        return np.concatenate([cls_rows, tokens], axis=1)

    def block(self, i: int, x: np.ndarray) -> np.ndarray:
        pre = f"blocks.{i}"
        b, t, d = x.shape
        a = self.attention(pre, self.ln(f"{pre}.norm1", x).reshape(b * t, d), b)
        x = int_add([x, a.reshape(b, t, -1)], self.p[f"{pre}.add1"], self.m.res_bits)
        h = self.slot(f"{pre}.mlp.fc1", self.ln(f"{pre}.norm2", x).reshape(b * t, d))
        h = self.slot(f"{pre}.mlp.fc2", lut_apply(h, self.p[f"{pre}.mlp.gelu"]))
        return int_add([x, h.reshape(b, t, -1)], self.p[f"{pre}.add2"], self.m.res_bits)

    def attention(self, pre: str, rows: np.ndarray, b: int) -> np.ndarray:
        hd = self.m.spec.head_dim
        qkv = self.slot(f"{pre}.attn.qkv", rows)
        heads = qkv.shape[1] // (3 * hd)  # structured pruning may have removed heads
        q, k, v = qkv.reshape(b, -1, 3, heads, hd).transpose(2, 0, 3, 1, 4)  # (B, h, T, hd)
        m, s = (int(a) for a in self.p[f"{pre}.attn.softmax"])
        p = int_softmax(int_matmul(q, k.swapaxes(-2, -1)), m, s, self.p["softmax.exp2_lut"],
                        self.m.prob_max)
        m, s = (int(a) for a in self.p[f"{pre}.attn.out"])
        o = requantize(int_matmul(p, v), m, s)
        return self.slot(f"{pre}.attn.proj", o.swapaxes(1, 2).reshape(rows.shape[0], -1))
