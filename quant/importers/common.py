"""What every importer shares: the refusal, readers of the source's layers that check them on the
way, the state of our ViT they fill, and the check that the imported ViT computes what the source
computes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vitfpga.errors import VerificationFailed

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "DataConfig", "ImportCheck", "Unsupported",
           "channel_stats", "gelu_kind", "import_check", "layer_norm", "linear", "mlp_fields",
           "patch_conv",
           "qualname", "uniform"]

# torchvision's (and timm's default) ImageNet normalisation.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

State = dict[str, torch.Tensor]


class Unsupported(Exception):
    """A part of the source model that vitfpga's ViT cannot compute: where, and what."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path or '<model>'}: {what}")
        self.path = path or "<model>"
        self.what = what


@dataclass(frozen=True)
class DataConfig:
    """The input a source model expects: image size and the normalisation its weights assume."""

    input_size: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class ImportCheck:
    """How far the imported ViT's logits are from the source's on the same images."""

    max_abs_diff: float
    logit_range: float  # max - min of the source's logits
    images: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= 1e-4 * self.logit_range

    def require(self, model: str) -> ImportCheck:
        """Itself when `ok`; else the run stops (exit 1): `model` was not imported faithfully."""
        if not self.ok:
            raise VerificationFailed(
                f"{model}: import check failed: vitfpga's float model differs from the source "
                f"module by {self.max_abs_diff:.3g} (limit 1e-4 x the logit range "
                f"{self.logit_range:.3g})")
        return self

    def to_json(self) -> dict[str, float | int | bool]:
        """report.json's `import`: the target is max_abs_diff <= 1e-4 x logit_range."""
        return {"max_abs_diff": self.max_abs_diff, "logit_range": self.logit_range,
                "relative": self.max_abs_diff / max(self.logit_range, 1e-30),
                "images": self.images, "ok": self.ok}


def qualname(obj: object) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def channel_stats(values: tuple[float, ...], chans: int) -> tuple[float, ...]:
    """Per-channel mean/std for `chans` channels: as given when the counts agree, else the mean
    of the given ones repeated (a grey image of an RGB-normalised model)."""
    values = tuple(float(v) for v in values)
    if len(values) == chans:
        return values
    return (sum(values) / len(values),) * chans


def _plain(module: nn.Module, base: type[nn.Module]) -> bool:
    """An instance of `base` whose forward is base's own (a subclass may compute otherwise)."""
    return isinstance(module, base) and type(module).forward is base.forward


def linear(path: str, module: nn.Module, k: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (n, k), bias) of a Linear; a bias-free one imports with zeros (exact)."""
    if not _plain(module, nn.Linear):
        raise Unsupported(path, f"{type(module).__name__} where a Linear layer was expected")
    if (module.in_features, module.out_features) != (k, n):
        raise Unsupported(path, f"Linear {module.in_features}->{module.out_features} where "
                                f"{k}->{n} was expected")
    bias = module.bias if module.bias is not None else torch.zeros(n)
    return module.weight.detach(), bias.detach()


def layer_norm(path: str, module: nn.Module, dim: int,
               extra: tuple[type[nn.Module], ...] = ()) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(weight, bias, eps) of a LayerNorm over the last `dim` features (`extra`: classes that
    compute exactly nn.LayerNorm's function, e.g. timm's). No affine imports as 1 and 0."""
    if not (_plain(module, nn.LayerNorm) or type(module) in extra):
        raise Unsupported(path, f"{type(module).__name__} where a LayerNorm was expected")
    assert isinstance(module, nn.LayerNorm)
    if tuple(module.normalized_shape) != (dim,):
        raise Unsupported(path, f"LayerNorm over {tuple(module.normalized_shape)}, not ({dim},)")
    weight = module.weight if module.weight is not None else torch.ones(dim)
    bias = module.bias if module.bias is not None else torch.zeros(dim)
    return weight.detach(), bias.detach(), float(module.eps)


def gelu_kind(path: str, module: nn.Module, erf: tuple[type[nn.Module], ...] = (),
              tanh: tuple[type[nn.Module], ...] = ()) -> str:
    """'erf' or 'tanh' for a GELU (nn.GELU, or the library classes given); any other activation
    is refused."""
    if _plain(module, nn.GELU):
        return "tanh" if module.approximate == "tanh" else "erf"
    if type(module) in erf:
        return "erf"
    if type(module) in tanh:
        return "tanh"
    if type(module).__name__ == "QuickGELU":
        raise Unsupported(path, "QuickGELU (x*sigmoid(1.702x)) is not supported: GELU (exact "
                                "or tanh) only")
    raise Unsupported(path, f"activation {type(module).__name__} is not supported: GELU (exact "
                            "or tanh) only")


def patch_conv(path: str, conv: nn.Module, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A patch embedding convolution as the Linear over patchified images: kernel = stride =
    patch, no padding, so one output pixel sees exactly one patch. Its weight (out, C, p, p)
    flattens channel-major then row-major, the order `patchify` lays a patch out in."""
    if type(conv) is not nn.Conv2d:
        raise Unsupported(path, f"{type(conv).__name__} is not supported: the patch embedding "
                                "must be one Conv2d (no convolutional stem)")
    square = (patch, patch)
    if (tuple(conv.kernel_size) != square or tuple(conv.stride) != square
            or tuple(conv.padding) != (0, 0) or tuple(conv.dilation) != (1, 1)
            or conv.groups != 1):
        raise Unsupported(path, f"Conv2d kernel {tuple(conv.kernel_size)}, stride "
                                f"{tuple(conv.stride)}, padding {conv.padding}: expected kernel = "
                                f"stride = {square}, no padding, no dilation, one group")
    weight = conv.weight.detach().reshape(conv.out_channels, -1)
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    return weight, bias.detach()


def uniform(values: dict[str, object], what: str) -> object:
    """The one value every layer has (our ViT has one of each for the whole model)."""
    items = list(values.items())
    first_path, first = items[0]
    for path, value in items[1:]:
        if value != first:
            raise Unsupported(path, f"{what} {value} where {first_path} has {first}: one {what} "
                                    "for the whole model only")
    return first


def import_check(source: nn.Module, vit: nn.Module, images: torch.Tensor) -> ImportCheck:
    """Compare the source's and the imported ViT's logits on `images` (float32, eval mode, no
    gradients; both modules are put back in the mode they were in)."""
    modes = [(m, m.training) for m in (source, vit)]
    try:
        with torch.no_grad():
            x = images.float()
            ref = source.eval().float()(x.to(_device(source)))
            out = vit.eval().float()(x.to(_device(vit)))
    finally:
        for module, mode in modes:
            module.train(mode)
    ref, out = ref.detach().cpu().double(), out.detach().cpu().double()
    return ImportCheck(max_abs_diff=float((ref - out).abs().max()),
                       logit_range=float(ref.max() - ref.min()), images=int(images.shape[0]))


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters(), torch.zeros(())).device


def mlp_fields(dim: int, hidden: int) -> dict[str, int]:
    """ViTConfig's MLP fields for a hidden width: a ratio where the width is a multiple of dim
    (the form vitfpga's own configs take), else the width itself."""
    if hidden % dim == 0:
        return {"mlp_ratio": hidden // dim, "mlp_hidden": 0}
    return {"mlp_ratio": 1, "mlp_hidden": hidden}
