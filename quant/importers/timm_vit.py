"""timm's `VisionTransformer` (ViT, DeiT) -> vitfpga's ViT, with its weights.

What maps: the patch Conv2d (as a Linear over patchified images), the class token and learned
position embeddings (class row first), pre-norm `Block`s of timm's standard `Attention` and `Mlp`
with or without qkv bias, exact or tanh GELU, any LayerNorm eps, LayerScale (gamma folded into
attn.proj / mlp.fc2: gamma * (W x + b) = (gamma W) x + gamma b), and class-token or average
pooling with the final LayerNorm (`norm`, or `fc_norm` after average pooling). Anything else is
refused naming the module path: computing it differently would change the model.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from vitfpga.quant.importers.tvcompat import import_timm
from vitfpga.quant.model import ViTConfig

__all__ = ["is_timm_model", "timm_import"]


def is_timm_model(module: nn.Module) -> bool:
    return type(module).__module__.split(".")[0] == "timm"


def _classes() -> SimpleNamespace:
    import_timm()
    from timm.layers import activations
    from timm.models import deit
    from timm.models import vision_transformer as vt

    return SimpleNamespace(vit=vt.VisionTransformer, distilled=deit.VisionTransformerDistilled,
                           block=vt.Block, attention=vt.Attention, mlp=vt.Mlp,
                           patch_embed=vt.PatchEmbed, layer_scale=vt.LayerScale,
                           layer_norm=(vt.LayerNorm,), erf=(activations.GELU,),
                           tanh=(activations.GELUTanh,))


@dataclass(frozen=True)
class _Block:
    heads: int
    hidden: int
    gelu: str
    eps: tuple[float, float]
    state: State  # our ViT's names below blocks.i


def _check_class(model: nn.Module, c: SimpleNamespace) -> None:
    if isinstance(model, c.distilled):
        raise Unsupported("", "distilled DeiT (dist_token, head_dist) is not supported: use the "
                              "non-distilled variant (e.g. deit_tiny_patch16_224)")
    if type(model) is not c.vit:
        raise Unsupported("", f"timm {type(model).__name__} is not a VisionTransformer: vitfpga "
                              "imports timm VisionTransformer (ViT, DeiT) and torchvision "
                              "VisionTransformer")


def _check_top(model: nn.Module) -> None:
    """The model-level options vitfpga's ViT does not compute."""
    if getattr(model, "dynamic_img_size", False):
        raise Unsupported("patch_embed", "dynamic_img_size=True is not supported: one image size")
    if getattr(model, "reg_token", None) is not None or getattr(model, "num_reg_tokens", 0):
        raise Unsupported("reg_token", "register tokens (reg_tokens > 0) are not supported")
    if getattr(model, "no_embed_class", False):
        raise Unsupported("pos_embed", "no_embed_class=True (no position embedding for the class "
                                       "token) is not supported")
    if getattr(model, "pos_embed", None) is None:
        raise Unsupported("pos_embed", "a ViT without learned position embeddings is not "
                                       "supported")
    if not isinstance(getattr(model, "norm_pre", nn.Identity()), nn.Identity):
        raise Unsupported("norm_pre", "a LayerNorm before the blocks (pre_norm=True) is not "
                                      "supported")
    if getattr(model, "attn_pool", None) is not None:
        raise Unsupported("attn_pool", f"attention pooling (global_pool='{model.global_pool}') "
                                       "is not supported: 'token' or 'avg'")
    if model.global_pool not in ("token", "avg"):
        raise Unsupported("", f"global_pool='{model.global_pool}' is not supported: 'token' or "
                              "'avg'")
    if model.global_pool == "avg" and model.cls_token is not None:
        raise Unsupported("cls_token", "average pooling with a class token is not supported: "
                                       "class_token=False with global_pool='avg'")
    pre_logits = getattr(model, "pre_logits", None)
    if pre_logits is not None and not isinstance(pre_logits, nn.Identity):
        raise Unsupported("pre_logits", "a pre-logits layer is not supported")


def _patch_embed(pe: nn.Module, c: SimpleNamespace) -> tuple[int, int, int, State]:
    """(image size, patch size, channels, state) of timm's PatchEmbed."""
    if type(pe) is not c.patch_embed:
        raise Unsupported("patch_embed", f"{type(pe).__name__} (a convolutional stem or hybrid "
                                         "embedding) is not supported: timm's PatchEmbed only")
    image, patch = tuple(pe.img_size), tuple(pe.patch_size)
    if image[0] != image[1] or patch[0] != patch[1]:
        raise Unsupported("patch_embed", f"image {image} / patch {patch}: square images and "
                                         "patches only")
    if image[0] % patch[0]:
        raise Unsupported("patch_embed", f"image size {image[0]} is not a multiple of the patch "
                                         f"size {patch[0]}")
    if not isinstance(pe.norm, nn.Identity):
        raise Unsupported("patch_embed.norm", "a norm after the patch embedding is not supported")
    if getattr(pe, "dynamic_img_pad", False) or not getattr(pe, "flatten", True):
        raise Unsupported("patch_embed", "dynamic padding / unflattened patch output is not "
                                         "supported")
    weight, bias = patch_conv("patch_embed.proj", pe.proj, patch[0])
    return image[0], patch[0], pe.proj.in_channels, {"patch_embed.weight": weight,
                                                     "patch_embed.bias": bias}


def _layer_scale(path: str, module: nn.Module, dim: int, c: SimpleNamespace) -> torch.Tensor:
    """LayerScale's gamma, or ones for none."""
    if isinstance(module, nn.Identity):
        return torch.ones(dim)
    if type(module) is not c.layer_scale:
        raise Unsupported(path, f"{type(module).__name__} is not supported: timm LayerScale only")
    return module.gamma.detach()


def _attention(path: str, attn: nn.Module, dim: int, c: SimpleNamespace) -> int:
    """The number of heads of timm's standard Attention (refusing its variants)."""
    if type(attn) is not c.attention:
        raise Unsupported(path, f"{type(attn).__name__} is not supported: timm's standard "
                                "Attention only (no relative position bias, windows or RoPE)")
    for name in ("q_norm", "k_norm"):
        if not isinstance(getattr(attn, name, nn.Identity()), nn.Identity):
            raise Unsupported(f"{path}.{name}", "qk-norm (qk_norm=True) is not supported")
    if not isinstance(getattr(attn, "norm", nn.Identity()), nn.Identity):
        raise Unsupported(f"{path}.norm", "a norm before attn.proj (scale_attn_norm=True) is not "
                                          "supported")
    if getattr(attn, "gate", None) is not None:
        raise Unsupported(f"{path}.gate", "gated attention is not supported")
    if attn.num_heads * attn.head_dim != dim:
        raise Unsupported(path, f"{attn.num_heads} heads of {attn.head_dim}: heads x head_dim "
                                f"must equal the embedding width {dim}")
    return int(attn.num_heads)


def _block(path: str, block: nn.Module, dim: int, c: SimpleNamespace) -> _Block:
    if type(block) is not c.block:
        raise Unsupported(path, f"{type(block).__name__} is not supported: timm's standard "
                                "pre-norm Block only")
    heads = _attention(f"{path}.attn", block.attn, dim, c)
    mlp = block.mlp
    if type(mlp) is not c.mlp:
        raise Unsupported(f"{path}.mlp", f"{type(mlp).__name__} is not supported: timm's Mlp "
                                         "only (no SwiGLU / GLU variants)")
    if not isinstance(mlp.norm, nn.Identity):
        raise Unsupported(f"{path}.mlp.norm", "a norm inside the MLP (scale_mlp_norm=True) is "
                                              "not supported")
    hidden = mlp.fc1.out_features if isinstance(mlp.fc1, nn.Linear) else 0
    n1w, n1b, eps1 = layer_norm(f"{path}.norm1", block.norm1, dim, c.layer_norm)
    n2w, n2b, eps2 = layer_norm(f"{path}.norm2", block.norm2, dim, c.layer_norm)
    qkv_w, qkv_b = linear(f"{path}.attn.qkv", block.attn.qkv, dim, 3 * dim)
    proj_w, proj_b = linear(f"{path}.attn.proj", block.attn.proj, dim, dim)
    fc1_w, fc1_b = linear(f"{path}.mlp.fc1", mlp.fc1, dim, hidden)
    fc2_w, fc2_b = linear(f"{path}.mlp.fc2", mlp.fc2, hidden, dim)
    gelu = gelu_kind(f"{path}.mlp.act", mlp.act, c.erf, c.tanh)
    g1 = _layer_scale(f"{path}.ls1", block.ls1, dim, c)
    g2 = _layer_scale(f"{path}.ls2", block.ls2, dim, c)
    state = {"norm1.weight": n1w, "norm1.bias": n1b, "attn.qkv.weight": qkv_w,
             "attn.qkv.bias": qkv_b, "attn.proj.weight": g1[:, None] * proj_w,
             "attn.proj.bias": g1 * proj_b, "norm2.weight": n2w, "norm2.bias": n2b,
             "mlp.fc1.weight": fc1_w, "mlp.fc1.bias": fc1_b,
             "mlp.fc2.weight": g2[:, None] * fc2_w, "mlp.fc2.bias": g2 * fc2_b}
    return _Block(heads, hidden, gelu, (eps1, eps2), state)


def _final_norm(model: nn.Module, pool: str) -> tuple[str, nn.Module]:
    """The one final LayerNorm: `norm` (on every token) or `fc_norm` (after pooling). Both are
    the same for the class token; after averaging only `fc_norm` is."""
    norm = getattr(model, "norm", nn.Identity())
    fc_norm = getattr(model, "fc_norm", nn.Identity())
    has = [not isinstance(m, nn.Identity) for m in (norm, fc_norm)]
    if has == [False, False]:
        raise Unsupported("norm", "a ViT without a final LayerNorm is not supported")
    if has == [True, True]:
        raise Unsupported("fc_norm", "both norm and fc_norm: one final LayerNorm only")
    if pool == "avg" and has[0]:
        raise Unsupported("norm", "a LayerNorm on every token before average pooling is not "
                                  "supported: use fc_norm=True (the norm after pooling)")
    return ("norm", norm) if has[0] else ("fc_norm", fc_norm)


def timm_import(model: nn.Module) -> tuple[ViTConfig, State]:
    """The ViTConfig of a timm VisionTransformer and our ViT's state dict with its weights."""
    c = _classes()
    _check_class(model, c)
    _check_top(model)
    image, patch, chans, state = _patch_embed(model.patch_embed, c)
    dim = int(model.embed_dim)
    pool = "token" if model.global_pool == "token" else "avg"
    blocks = [_block(f"blocks.{i}", b, dim, c) for i, b in enumerate(model.blocks)]
    if not blocks:
        raise Unsupported("blocks", "a ViT without blocks is not supported")
    norm_path, norm = _final_norm(model, pool)
    nw, nb, eps = layer_norm(norm_path, norm, dim, c.layer_norm)
    if not isinstance(model.head, nn.Linear):
        raise Unsupported("head", f"{type(model.head).__name__} is not supported: a Linear "
                                  "classifier head (num_classes > 0)")
    head_w, head_b = linear("head", model.head, dim, model.head.out_features)
    eps_of = {f"blocks.{i}.norm{j + 1}": b.eps[j] for i, b in enumerate(blocks) for j in (0, 1)}
    hidden = uniform({f"blocks.{i}.mlp.fc1": b.hidden for i, b in enumerate(blocks)}, "MLP width")
    cfg = ViTConfig(
        image_size=image, patch_size=patch, in_chans=chans, dim=dim, depth=len(blocks),
        heads=int(uniform({f"blocks.{i}.attn": b.heads for i, b in enumerate(blocks)}, "heads")),
        **mlp_fields(dim, int(hidden)), num_classes=model.head.out_features,
        ln_eps=float(uniform({**eps_of, norm_path: eps}, "LayerNorm eps")),
        gelu=str(uniform({f"blocks.{i}.mlp.act": b.gelu for i, b in enumerate(blocks)}, "GELU")),
        pool=pool)
    pos = model.pos_embed.detach()
    if tuple(pos.shape) != (1, cfg.tokens, dim):
        raise Unsupported("pos_embed", f"shape {tuple(pos.shape)}, expected (1, {cfg.tokens}, "
                                       f"{dim})")
    state["pos_embed"] = pos
    if pool == "token":
        state["cls_token"] = model.cls_token.detach()
    for i, b in enumerate(blocks):
        state.update({f"blocks.{i}.{k}": v for k, v in b.state.items()})
    state.update({"norm.weight": nw, "norm.bias": nb, "head.weight": head_w, "head.bias": head_b})
    return cfg, state
