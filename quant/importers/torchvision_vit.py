"""torchvision's `VisionTransformer` (vit_b_16 and friends) -> vitfpga's ViT, with its weights.

What maps: conv_proj (the patch Conv2d, as a Linear over patchified images), class_token,
encoder.pos_embedding (class row first), each encoder layer's ln_1, self_attention (an
nn.MultiheadAttention whose packed in_proj holds q, k, v in that order, the layout of our qkv),
ln_2 and MLPBlock ([0] Linear, [1] GELU, [3] Linear), encoder.ln and heads.head. LayerNorm eps is
read from the modules (torchvision's default is 1e-6). A convolutional stem (conv_stem_configs)
or a pre-logits layer (representation_size) is refused naming the module path.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from vitfpga.quant.importers.common import (
    State,
    Unsupported,
    gelu_kind,
    layer_norm,
    linear,
    mlp_fields,
    patch_conv,
    uniform,
)
from vitfpga.quant.importers.tvcompat import import_torchvision
from vitfpga.quant.model import ViTConfig

__all__ = ["is_torchvision_model", "torchvision_import"]


def is_torchvision_model(module: nn.Module) -> bool:
    return type(module).__module__.split(".")[0] == "torchvision"


def _classes() -> SimpleNamespace:
    import_torchvision()
    from torchvision.models import vision_transformer as vt

    return SimpleNamespace(vit=vt.VisionTransformer, block=vt.EncoderBlock, mlp=vt.MLPBlock)


def _attention(path: str, mha: nn.Module, dim: int) -> tuple[int, State]:
    """(heads, our attn.qkv / attn.proj state) of a self-attention nn.MultiheadAttention."""
    if type(mha) is not nn.MultiheadAttention:
        raise Unsupported(path, f"{type(mha).__name__} is not supported: nn.MultiheadAttention "
                                "only")
    if (not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.bias_v is not None
            or mha.add_zero_attn or mha.embed_dim != dim):
        raise Unsupported(path, "nn.MultiheadAttention with separate k/v widths, bias_k/bias_v "
                                "or add_zero_attn is not supported")
    in_bias = mha.in_proj_bias if mha.in_proj_bias is not None else torch.zeros(3 * dim)
    proj_w, proj_b = linear(f"{path}.out_proj", mha.out_proj, dim, dim)
    return int(mha.num_heads), {"attn.qkv.weight": mha.in_proj_weight.detach(),
                                "attn.qkv.bias": in_bias.detach(),
                                "attn.proj.weight": proj_w, "attn.proj.bias": proj_b}


def _layer(path: str, layer: nn.Module, dim: int,
           c: SimpleNamespace) -> tuple[int, int, str, dict[str, float], State]:
    """(heads, MLP width, GELU, LayerNorm eps by path, our blocks.i state) of an EncoderBlock."""
    if type(layer) is not c.block:
        raise Unsupported(path, f"{type(layer).__name__} is not supported: torchvision's "
                                "EncoderBlock only")
    heads, state = _attention(f"{path}.self_attention", layer.self_attention, dim)
    mlp = layer.mlp
    if type(mlp) is not c.mlp or len(mlp) != 5:
        raise Unsupported(f"{path}.mlp", f"{type(mlp).__name__} is not supported: torchvision's "
                                         "MLPBlock (Linear, GELU, Dropout, Linear, Dropout) only")
    hidden = mlp[0].out_features if isinstance(mlp[0], nn.Linear) else 0
    fc1_w, fc1_b = linear(f"{path}.mlp.0", mlp[0], dim, hidden)
    fc2_w, fc2_b = linear(f"{path}.mlp.3", mlp[3], hidden, dim)
    gelu = gelu_kind(f"{path}.mlp.1", mlp[1])
    n1w, n1b, eps1 = layer_norm(f"{path}.ln_1", layer.ln_1, dim)
    n2w, n2b, eps2 = layer_norm(f"{path}.ln_2", layer.ln_2, dim)
    state.update({"norm1.weight": n1w, "norm1.bias": n1b, "norm2.weight": n2w,
                  "norm2.bias": n2b, "mlp.fc1.weight": fc1_w, "mlp.fc1.bias": fc1_b,
                  "mlp.fc2.weight": fc2_w, "mlp.fc2.bias": fc2_b})
    return heads, hidden, gelu, {f"{path}.ln_1": eps1, f"{path}.ln_2": eps2}, state


def _head(model: nn.Module, dim: int) -> tuple[int, State]:
    heads = model.heads
    if "pre_logits" in dict(heads.named_children()):
        raise Unsupported("heads.pre_logits", "a pre-logits layer (representation_size) is not "
                                              "supported")
    if len(heads) != 1 or not isinstance(getattr(heads, "head", None), nn.Linear):
        raise Unsupported("heads", "one Linear classifier (heads.head) only")
    weight, bias = linear("heads.head", heads.head, dim, heads.head.out_features)
    return heads.head.out_features, {"head.weight": weight, "head.bias": bias}


def _patch_embed(model: nn.Module) -> tuple[int, int, int, State]:
    image, patch = int(model.image_size), int(model.patch_size)
    if isinstance(model.conv_proj, nn.Sequential):
        raise Unsupported("conv_proj", "a convolutional stem (conv_stem_configs) is not "
                                       "supported: one patch Conv2d only")
    if image % patch:
        raise Unsupported("conv_proj", f"image size {image} is not a multiple of the patch size "
                                       f"{patch}")
    weight, bias = patch_conv("conv_proj", model.conv_proj, patch)
    return image, patch, model.conv_proj.in_channels, {"patch_embed.weight": weight,
                                                       "patch_embed.bias": bias}


def torchvision_import(model: nn.Module) -> tuple[ViTConfig, State]:
    """The ViTConfig of a torchvision VisionTransformer and our ViT's state dict with its
    weights."""
    c = _classes()
    if type(model) is not c.vit:
        raise Unsupported("", f"torchvision {type(model).__name__} is not a VisionTransformer: "
                              "vitfpga imports timm VisionTransformer (ViT, DeiT) and torchvision "
                              "VisionTransformer")
    dim = int(model.hidden_dim)
    image, patch, chans, state = _patch_embed(model)
    layers = [_layer(f"encoder.layers.{name}", layer, dim, c)
              for name, layer in model.encoder.layers.named_children()]
    if not layers:
        raise Unsupported("encoder.layers", "a ViT without encoder layers is not supported")
    nw, nb, eps = layer_norm("encoder.ln", model.encoder.ln, dim)
    classes, head = _head(model, dim)
    named = list(zip([f"encoder.layers.{n}" for n, _ in model.encoder.layers.named_children()],
                     layers, strict=True))
    heads = uniform({f"{n}.self_attention": la[0] for n, la in named}, "heads")
    hidden = uniform({f"{n}.mlp.0": la[1] for n, la in named}, "MLP width")
    gelu = uniform({f"{n}.mlp.1": la[2] for n, la in named}, "GELU")
    eps = uniform({**{p: e for _, la in named for p, e in la[3].items()}, "encoder.ln": eps},
                  "LayerNorm eps")
    cfg = ViTConfig(image_size=image, patch_size=patch, in_chans=chans, dim=dim,
                    depth=len(layers), heads=int(heads), **mlp_fields(dim, int(hidden)),
                    num_classes=classes, ln_eps=float(eps), gelu=str(gelu), pool="token")
    pos, cls = model.encoder.pos_embedding.detach(), model.class_token.detach()
    if tuple(pos.shape) != (1, cfg.tokens, dim) or tuple(cls.shape) != (1, 1, dim):
        raise Unsupported("encoder.pos_embedding", f"shape {tuple(pos.shape)}, expected "
                                                   f"(1, {cfg.tokens}, {dim})")
    state.update({"cls_token": cls, "pos_embed": pos, "norm.weight": nw, "norm.bias": nb, **head})
    for i, layer in enumerate(layers):
        state.update({f"blocks.{i}.{k}": v for k, v in layer[4].items()})
    return cfg, state
