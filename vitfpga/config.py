"""The run configuration: one validated dataclass, loadable from TOML, defaults that just work."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from vitfpga.errors import BadInput
from vitfpga.hls.boards import get_board
from vitfpga.quant.codecs import SUPPORTED_BITS
from vitfpga.quant.model import PRESETS
from vitfpga.tomlfile import read_toml, typed_value

__all__ = ["SIMULATORS", "RunConfig", "load_config"]

SIMULATORS = ("csim", "verilator", "icarus")
RTL_SIMULATORS = ("verilator", "icarus")


@dataclass(frozen=True)
class RunConfig:
    model: str = "vit-digits"
    seed: int = 0
    board: str = "pynq-z2"
    weight_bits: int = 4
    float_epochs: int = 120
    float_lr: float = 3e-3
    qat_epochs: int = 30
    qat_lr: float = 1e-3
    kd_weight: float = 0.5
    kd_temperature: float = 2.0
    verify_images: int = 4  # test images whose real activations verify every layer
    simulators: tuple[str, ...] = field(default=SIMULATORS)
    hil_images: int = 360  # test images through hardware in the loop (0: skip; capped at all)
    hil_simulator: str = "verilator"
    synth: bool = True  # Yosys resource check of the emitted Verilog

    def quick(self) -> RunConfig:
        """Same path, fewer epochs: for tests and a first look."""
        return dataclasses.replace(self, float_epochs=min(self.float_epochs, 40),
                                   qat_epochs=min(self.qat_epochs, 5),
                                   hil_images=min(self.hil_images, 32))

    def validate(self) -> RunConfig:
        if self.model not in PRESETS:
            raise BadInput(f"unknown model '{self.model}'; known: {', '.join(PRESETS)}")
        get_board(self.board)
        if self.weight_bits not in SUPPORTED_BITS:
            raise BadInput(f"weight_bits {self.weight_bits} is not supported; "
                           f"use one of {', '.join(map(str, SUPPORTED_BITS))}")
        for name in ("float_epochs", "qat_epochs", "verify_images"):
            if getattr(self, name) < 1:
                raise BadInput(f"{name} must be at least 1")
        if not 0.0 <= self.kd_weight <= 1.0:
            raise BadInput("kd_weight must be between 0 and 1")
        if self.kd_temperature <= 0 or self.float_lr <= 0 or self.qat_lr <= 0:
            raise BadInput("kd_temperature, float_lr and qat_lr must be positive")
        if self.hil_images < 0:
            raise BadInput("hil_images must be 0 (skip) or more")
        if self.hil_simulator not in RTL_SIMULATORS:
            raise BadInput(f"hil_simulator must be one of {', '.join(RTL_SIMULATORS)}")
        unknown = [s for s in self.simulators if s not in SIMULATORS]
        if unknown or not self.simulators:
            raise BadInput(f"simulators must be a non-empty subset of {', '.join(SIMULATORS)}")
        return self


def load_config(path: Path | None, **overrides: Any) -> RunConfig:
    """Defaults, then the TOML file, then command-line overrides (None means not given)."""
    values: dict[str, Any] = {}
    if path is not None:
        raw = read_toml(path, "config file")
        known = get_type_hints(RunConfig)
        for key, value in raw.items():
            if key not in known:
                raise BadInput(f"config file {path}: unknown key '{key}'; known keys: "
                               f"{', '.join(known)}")
            try:
                values[key] = typed_value(key, value, known[key])
            except BadInput as e:
                raise BadInput(f"config file {path}: {e}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig(**values).validate()
