"""How a model enters vitfpga: a frontend turns a name (and later a user's module) into the
float ViT that training, compression and export work on, and its `ModelSpec`.

Everything downstream of export depends only on the integer contract (`runtime.IntModel`), and
everything from training to export only on vitfpga's own `ViT` (quant/model.py), whose linear
layers come from one factory so the Brevitas student shares its structure. A frontend's job is
to give that `ViT`: built fresh for training, or carrying the user's float weights (then the
teacher needs no training). Only the built-in presets exist yet; importers of timm and
torchvision models plug in here (`frontend_for`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from vitfpga.errors import BadInput
from vitfpga.quant.model import PRESETS, ViT, ViTConfig
from vitfpga.runtime.model import ModelSpec

__all__ = ["Frontend", "PresetFrontend", "frontend_for", "known_models"]


class Frontend(ABC):
    """A model source: its name, its shape and its float ViT."""

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
        """True when `float_model` carries trained weights (no teacher training needed)."""

    @abstractmethod
    def float_model(self) -> ViT:
        """The float ViT: freshly initialised (seed torch first), or with the source's weights."""


@dataclass(frozen=True)
class PresetFrontend(Frontend):
    """A built-in preset (`quant.model.PRESETS`), trained from scratch on the run's data."""

    name: str

    @property
    def config(self) -> ViTConfig:
        return PRESETS[self.name]

    @property
    def pretrained(self) -> bool:
        return False

    def float_model(self) -> ViT:
        return ViT(self.config)


def known_models() -> list[str]:
    return list(PRESETS)


def frontend_for(name: str) -> Frontend:
    """The frontend of a model name; an unknown one is one line listing what is known."""
    if name in PRESETS:
        return PresetFrontend(name)
    raise BadInput(f"unknown model '{name}'; known: {', '.join(known_models())}")
