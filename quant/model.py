"""A small Vision Transformer whose every linear layer comes from one factory, so the float
teacher and the Brevitas student share their structure and parameter names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from vitfpga.runtime.model import ModelSpec

__all__ = ["HARDWARE_PRESETS", "PRESETS", "ViT", "ViTConfig", "float_linear", "linear_shapes"]

LinearFactory = Callable[[int, int, str], nn.Module]

GELUS = ("erf", "tanh")
POOLS = ("token", "avg")


@dataclass(frozen=True)
class ViTConfig:
    image_size: int = 8
    patch_size: int = 2
    in_chans: int = 1
    dim: int = 32
    depth: int = 3
    heads: int = 4
    mlp_ratio: int = 2
    num_classes: int = 10
    # Appended with defaults, so positional construction and the presets stay as they were.
    # What imported models need: an MLP width that is no multiple of dim, their LayerNorm eps,
    # the tanh GELU, and average pooling (no class token; mean of tokens, then `norm`).
    mlp_hidden: int = 0  # 0: dim * mlp_ratio
    ln_eps: float = 1e-5
    gelu: str = "erf"  # "erf" (exact) or "tanh"
    pool: str = "token"  # "token": class token, `norm`, token 0; "avg": mean of tokens, `norm`

    def __post_init__(self) -> None:
        if self.gelu not in GELUS:
            raise ValueError(f"ViTConfig gelu {self.gelu!r}: expected one of {', '.join(GELUS)}")
        if self.pool not in POOLS:
            raise ValueError(f"ViTConfig pool {self.pool!r}: expected one of {', '.join(POOLS)}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def tokens(self) -> int:
        return self.num_patches + (1 if self.pool == "token" else 0)  # + class token

    @property
    def patch_dim(self) -> int:
        return self.patch_size**2 * self.in_chans

    @property
    def hidden(self) -> int:
        return self.mlp_hidden or self.dim * self.mlp_ratio

    def describe(self) -> str:
        cls = "with cls" if self.pool == "token" else "no cls"
        extra = "".join([
            ", average pooling" if self.pool == "avg" else "",
            f", LayerNorm eps {self.ln_eps:g}" if self.ln_eps != 1e-5 else "",
            ", tanh GELU" if self.gelu == "tanh" else ""])
        return (f"{self.image_size}x{self.image_size} images, {self.patch_size}x{self.patch_size} "
                f"patches ({self.tokens} tokens {cls}), dim {self.dim}, depth {self.depth}, "
                f"{self.heads} heads, MLP {self.hidden}, {self.num_classes} classes{extra}")

    def to_dict(self) -> dict[str, int | float | str]:
        return asdict(self)

    def spec(self) -> ModelSpec:
        """The integer model's geometry and the choices its forward pass depends on."""
        return ModelSpec(image_size=self.image_size, patch_size=self.patch_size,
                         in_chans=self.in_chans, dim=self.dim, depth=self.depth,
                         heads=self.heads, mlp_hidden=self.hidden, num_classes=self.num_classes,
                         pool=self.pool, ln_eps=self.ln_eps, gelu=self.gelu)


PRESETS: dict[str, ViTConfig] = {"vit-digits": ViTConfig()}

# Hardware-scale shapes for planning and RTL checks (with seeded random weights, labelled so):
# DeiT-Tiny and DeiT-Small at 224x224 with 16x16 patches (Touvron et al., 2021); vit-1m, a
# 1.2M-parameter ViT on 32x32 RGB images (4x4 patches, 65 tokens), the largest that sits
# whole on a Pynq-Z2 (docs/vit.md).
HARDWARE_PRESETS: dict[str, ViTConfig] = {
    "deit-tiny": ViTConfig(224, 16, 3, 192, 12, 3, 4, 1000),
    "deit-small": ViTConfig(224, 16, 3, 384, 12, 6, 4, 1000),
    "vit-1m": ViTConfig(32, 4, 3, 128, 6, 4, 4, 10),
}


def linear_shapes(cfg: ViTConfig) -> list[tuple[str, int, int, int]]:
    """(name, K, N, rows per image) of every linear layer, in execution order: the patch
    embedding sees the patches, the blocks every token, the head one pooled row."""
    shapes = [("patch_embed", cfg.patch_dim, cfg.dim, cfg.num_patches)]
    for b in range(cfg.depth):
        t = cfg.tokens
        shapes += [(f"blocks.{b}.attn.qkv", cfg.dim, 3 * cfg.dim, t),
                   (f"blocks.{b}.attn.proj", cfg.dim, cfg.dim, t),
                   (f"blocks.{b}.mlp.fc1", cfg.dim, cfg.hidden, t),
                   (f"blocks.{b}.mlp.fc2", cfg.hidden, cfg.dim, t)]
    return [*shapes, ("head", cfg.dim, cfg.num_classes, 1)]


def float_linear(in_features: int, out_features: int, name: str) -> nn.Module:
    return nn.Linear(in_features, out_features)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, num_patches, patch*patch*C), row-major patches."""
    # Reshape -> transpose -> reshape rather than unfold: the same values, and an ONNX graph
    # FINN's streamlining understands.
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * patch * patch)


class Attention(nn.Module):
    def __init__(self, cfg: ViTConfig, prefix: str, linear: LinearFactory) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.qkv = linear(cfg.dim, 3 * cfg.dim, f"{prefix}.qkv")
        self.proj = linear(cfg.dim, cfg.dim, f"{prefix}.proj")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, cfg: ViTConfig, prefix: str, linear: LinearFactory) -> None:
        super().__init__()
        self.fc1 = linear(cfg.dim, cfg.hidden, f"{prefix}.fc1")
        self.act = nn.GELU(approximate="tanh" if cfg.gelu == "tanh" else "none")
        self.fc2 = linear(cfg.hidden, cfg.dim, f"{prefix}.fc2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig, prefix: str, linear: LinearFactory) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.ln_eps)
        self.attn = Attention(cfg, f"{prefix}.attn", linear)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.ln_eps)
        self.mlp = Mlp(cfg, f"{prefix}.mlp", linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Token pooling: a class token, `norm`, the class token's row to the head. Average pooling:
    no class token (and no `cls_token` parameter), the mean of the tokens, `norm`, the head."""

    def __init__(self, cfg: ViTConfig, linear: LinearFactory = float_linear) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = linear(cfg.patch_dim, cfg.dim, "patch_embed")
        if cfg.pool == "token":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.tokens, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(
            Block(cfg, f"blocks.{i}", linear) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.ln_eps)
        self.head = linear(cfg.dim, cfg.num_classes, "head")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(patchify(images, self.cfg.patch_size))
        if self.cfg.pool == "token":
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        if self.cfg.pool == "token":
            return self.head(self.norm(x)[:, 0])
        return self.head(self.norm(x.mean(dim=1)))
