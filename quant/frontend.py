"""How a model enters vitfpga: a frontend turns a name (a built-in preset, a timm or torchvision
model, or a user's factory) into the float ViT that training, compression and export work on,
and its `ModelSpec`.

Everything downstream of export depends only on the integer contract (`runtime.IntModel`), and
everything from training to export only on vitfpga's own `ViT` (quant/model.py), whose linear
layers come from one factory so the Brevitas student shares its structure. A user's model is the
*source*: it is built (seeded) and inspected when the frontend is made, so what vitfpga's ViT
cannot compute is refused before any training; it may be trained as it is (`source_model`), and
`to_vit` then imports it, weights and all, into vitfpga's ViT (quant/importers/).

Model names:
- a preset (`known_models()`), optionally with ViTConfig fields in `model_args`;
- `timm:NAME` (timm.create_model(NAME, pretrained=False, **model_args); `?pretrained=1` asks timm
  for its pretrained weights);
- `torchvision:NAME` (torchvision.models.get_model(NAME, weights=None, **model_args)), or
  `torchvision:VisionTransformer` with image_size, patch_size, num_layers, num_heads, hidden_dim,
  mlp_dim;
- `package.module:factory`: factory(**model_args) returns the nn.Module.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vitfpga.errors import BadInput
from vitfpga.quant.importers import (
    DataConfig,
    ImportCheck,
    data_config_for,
    import_check,
    load_weights,
    source_config,
    to_vit,
)
from vitfpga.quant.importers.tvcompat import import_timm, import_torchvision
from vitfpga.quant.model import PRESETS, ViT, ViTConfig
from vitfpga.runtime.model import ModelSpec

__all__ = [
    "DataConfig",
    "Frontend",
    "ImportCheck",
    "ImportedFrontend",
    "PresetFrontend",
    "check_model_name",
    "frontend_for",
    "import_check",
    "known_models",
]


class Frontend(ABC):
    """A model source: its name, its shape, the module that is trained and its float ViT."""

    name: str

    @property
    @abstractmethod
    def config(self) -> ViTConfig:
        """The float ViT's configuration (what quant/ builds teachers and students from)."""

    @property
    def spec(self) -> ModelSpec:
        """The integer model's geometry, as export writes it into `model.npz`."""
        return self.config.spec()

    @property
    @abstractmethod
    def pretrained(self) -> bool:
        """True when float weights were given (no teacher training needed)."""

    @property
    def data_config(self) -> DataConfig | None:
        """The input size and normalisation the source expects; None: the dataset's own."""
        return None

    @abstractmethod
    def source_model(self) -> nn.Module:
        """The PyTorch module to train (the user's model; for a preset, a fresh ViT)."""

    @abstractmethod
    def to_vit(self, source: nn.Module) -> ViT:
        """vitfpga's ViT carrying `source`'s current weights (call it after training)."""

    def float_model(self) -> ViT:
        """The float ViT: freshly initialised (seed torch first), or with the source's weights."""
        return self.to_vit(self.source_model())


@dataclass(frozen=True)
class PresetFrontend(Frontend):
    """A built-in preset (`quant.model.PRESETS`), trained from scratch on the run's data unless
    weights (a state dict of the ViT) are given."""

    name: str
    overrides: ViTConfig | None = None  # the preset with fields replaced (model_args etc.)
    weights: str | None = None

    @property
    def config(self) -> ViTConfig:
        return self.overrides or PRESETS[self.name]

    @property
    def pretrained(self) -> bool:
        return self.weights is not None

    def source_model(self) -> nn.Module:
        model = ViT(self.config)
        if self.weights is not None:
            load_weights(model, self.weights)
        return model

    def to_vit(self, source: nn.Module) -> ViT:
        if not isinstance(source, ViT) or source.cfg != self.config:
            raise BadInput(f"{self.name}: to_vit expects the preset's own ViT")
        return source


class ImportedFrontend(Frontend):
    """A user's model (timm, torchvision or a factory), built once and inspected at once."""

    def __init__(self, name: str, source: nn.Module, pretrained: bool) -> None:
        self.name = name
        self._source = source
        self._config = source_config(source, name)
        self._pretrained = pretrained
        self._data = data_config_for(source, self._config)

    @property
    def config(self) -> ViTConfig:
        return self._config

    @property
    def pretrained(self) -> bool:
        return self._pretrained

    @property
    def data_config(self) -> DataConfig | None:
        return self._data

    def source_model(self) -> nn.Module:
        """A copy of the source as built (seeded initialisation, or the given weights)."""
        return copy.deepcopy(self._source)

    def to_vit(self, source: nn.Module) -> ViT:
        vit = to_vit(source, self.name)
        if vit.cfg != self._config:
            raise BadInput(f"{self.name}: the trained module's shape ({vit.cfg.describe()}) is "
                           f"not the one it was built with ({self._config.describe()})")
        return vit

    def float_model(self) -> ViT:
        return self.to_vit(self._source)


def known_models() -> list[str]:
    return list(PRESETS)


def _unknown(name: str) -> BadInput:
    return BadInput(f"unknown model '{name}'; known: {', '.join(known_models())}, or "
                    "timm:NAME, torchvision:NAME, package.module:factory")


def check_model_name(model: str) -> tuple[str, str, bool]:
    """(kind, name, pretrained) of a model name, checked without building anything: a preset
    (kind "preset"), "timm:NAME", "torchvision:NAME" (either with "?pretrained=1") or
    "package.module:factory"; anything else is one line listing the forms."""
    if model in PRESETS:
        return "preset", model, False
    kind, sep, rest = model.partition(":")
    name, _, query = rest.partition("?")
    known = kind in ("timm", "torchvision") and bool(name)
    factory = all(p.isidentifier() for p in kind.split(".")) and name.isidentifier()
    if not sep or not (known or factory):
        raise _unknown(model)
    return kind, name, _pretrained_flag(model, query)


def _preset(name: str, args: dict[str, Any], weights: str | None, num_classes: int | None,
            in_chans: int | None) -> PresetFrontend:
    fields = {f.name for f in dataclasses.fields(ViTConfig)}
    unknown = sorted(set(args) - fields)
    if unknown:
        raise BadInput(f"{name}: unknown model_args {', '.join(unknown)}; a preset takes "
                       f"ViTConfig fields: {', '.join(sorted(fields))}")
    given = {"num_classes": num_classes, "in_chans": in_chans}
    changes = {**{k: v for k, v in given.items() if v is not None}, **args}
    try:
        cfg = dataclasses.replace(PRESETS[name], **changes)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{name}: model_args: {exc}") from None
    frontend = PresetFrontend(name, None if cfg == PRESETS[name] else cfg, weights)
    if weights is not None:
        with torch.random.fork_rng(devices=[]):  # a mismatched file is refused now, not later
            frontend.source_model()
    return frontend


def _pretrained_flag(name: str, query: str) -> bool:
    if not query:
        return False
    key, _, value = query.partition("=")
    if key != "pretrained" or value.lower() not in ("0", "1", "true", "false"):
        raise BadInput(f"model '{name}': unknown option '{query}'; only ?pretrained=1")
    return value.lower() in ("1", "true")


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _timm_builder(label: str, name: str, args: dict[str, Any],
                  pretrained: bool) -> Callable[[], nn.Module]:
    timm = _library(label, import_timm)
    if not timm.is_model(name):
        raise BadInput(f"{label}: unknown timm model '{name}' (timm.list_models('*vit*') "
                       "lists them)")
    return lambda: timm.create_model(name, pretrained=pretrained, **args)


def _torchvision_builder(label: str, name: str, args: dict[str, Any], pretrained: bool,
                         in_chans: int | None) -> Callable[[], nn.Module]:
    tv = _library(label, import_torchvision)
    if name == "VisionTransformer":
        if pretrained:
            raise BadInput(f"{label}: no pretrained weights for a VisionTransformer built "
                           "from its arguments")
        build: Callable[[], nn.Module] = lambda: tv.models.VisionTransformer(**args)  # noqa: E731
    elif name in tv.models.list_models():
        weights = "DEFAULT" if pretrained else None
        build = lambda: tv.models.get_model(name, weights=weights, **args)  # noqa: E731
    else:
        raise BadInput(f"{label}: unknown torchvision model '{name}' "
                       "(torchvision.models.list_models() lists them)")
    if in_chans in (None, 3):
        return build
    if pretrained:
        raise BadInput(f"{label}: torchvision's pretrained weights take 3 input channels, not "
                       f"{in_chans}")
    return lambda: _with_channels(build(), in_chans)


def _with_channels(model: nn.Module, chans: int) -> nn.Module:
    """torchvision's ViT has 3 input channels fixed: another count gets a new patch Conv2d,
    initialised as torchvision initialises its own."""
    conv = getattr(model, "conv_proj", None)
    if type(conv) is nn.Conv2d:
        new = nn.Conv2d(chans, conv.out_channels, conv.kernel_size, conv.stride)
        nn.init.trunc_normal_(new.weight, std=(1 / (chans * new.weight[0, 0].numel())) ** 0.5)
        nn.init.zeros_(new.bias)
        model.conv_proj = new
    return model


def _factory_builder(label: str, module_name: str, attr: str, args: dict[str, Any],
                     extra: dict[str, int]) -> tuple[Callable[[], nn.Module], dict[str, Any]]:
    """The factory's builder and its arguments: `extra` (num_classes, in_chans) only where the
    factory takes them."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInput(f"{label}: cannot import module '{module_name}' ({exc})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise BadInput(f"{label}: module '{module_name}' has no callable '{attr}'")
    kwargs = {**{k: v for k, v in extra.items() if _accepts(factory, k)}, **args}
    return lambda: factory(**kwargs), kwargs


def _library(label: str, load: Callable[[], Any]) -> Any:
    try:
        return load()
    except ImportError as exc:
        raise BadInput(f"{label}: needs {exc.name or 'timm/torchvision'} installed "
                       "(pip install timm torchvision)") from None


def _build(label: str, build: Callable[[], nn.Module], args: dict[str, Any],
           seed: int) -> nn.Module:
    """The source module, built once with torch seeded (the caller's RNG is left as it was)."""
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            source = build()
    except (TypeError, ValueError, AssertionError, RuntimeError, KeyError) as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadInput(f"{label}: cannot build it with model_args {args}: {text}") from None
    if not isinstance(source, nn.Module):
        raise BadInput(f"{label}: the factory returned a {type(source).__name__}, not an "
                       "nn.Module")
    return source


def frontend_for(model: str, model_args: dict[str, Any] | None = None,
                 weights: str | None = None, num_classes: int | None = None,
                 in_chans: int | None = None, seed: int = 0) -> Frontend:
    """The frontend of a model name (see the module docstring). `num_classes` and `in_chans` go
    to the model's constructor unless `model_args` gives them; `weights` is a state dict file
    (.pt, .pth, .safetensors) loaded strictly into the source. Unknown names, models vitfpga's
    ViT cannot compute and mismatched weights are one line each (BadInput)."""
    args = dict(model_args or {})
    if model in PRESETS:
        return _preset(model, args, weights, num_classes, in_chans)
    kind, name, pretrained = check_model_name(model)
    extra = {k: v for k, v in (("num_classes", num_classes), ("in_chans", in_chans))
             if v is not None}
    if kind == "timm":
        args = {**extra, **args}
        build = _timm_builder(model, name, args, pretrained)
    elif kind == "torchvision":
        args = {**extra, **args}
        chans = args.pop("in_chans", None)
        build = _torchvision_builder(model, name, args, pretrained, chans)
    else:
        if pretrained:
            raise BadInput(f"{model}: ?pretrained=1 is for timm and torchvision models; give a "
                           "factory's weights with --weights")
        build, args = _factory_builder(model, kind, name, args, extra)
    source = _build(model, build, args, seed)
    if weights is not None:
        load_weights(source, weights)
    return ImportedFrontend(model, source.eval(), pretrained or weights is not None)
