"""The run configuration: one validated dataclass, loadable from TOML, defaults that just work."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import get_board
from vitfpga.quant.codecs import SUPPORTED_BITS
from vitfpga.quant.model import PRESETS
from vitfpga.tomlfile import read_toml, typed_value

__all__ = ["SIMULATORS", "RunConfig", "load_config"]

SIMULATORS = ("csim", "verilator", "icarus")
RTL_SIMULATORS = ("verilator", "icarus")
PRUNE_METHODS = ("none", "magnitude", "nm", "heads", "neurons")
LOWRANK_METHODS = ("none", "svd", "aware")


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
    # Compression (quant/compress.py). Mixed precision: "GLOB=BITS" per slot, e.g. "head=8".
    layer_bits: tuple[str, ...] = ()
    prune: str = "none"  # none | magnitude | nm | heads | neurons
    prune_sparsity: float = 0.5  # fraction removed (weights, heads or neurons); nm uses prune_nm
    prune_nm: str = "2:4"
    lowrank: str = "none"  # none | svd | aware: factorise block layers as (x·U)·V
    lowrank_keep: float = 0.5  # fraction of the block layers' parameters the factors keep
    lowrank_sparse: float = 0.0  # sum of two tensors: density of a sparse term beside U·V
    lowrank_compensate: int = 0  # gradient steps of layer-wise error compensation per layer
    shared_rank: int = 0  # DeepCompress-ViT: rank of one decoder per layer type (0: off)
    shared_code_bits: int = 0  # bits of the per-block codes (0: weight_bits)
    shared_type_ranks: tuple[str, ...] = ()  # per layer type "TYPE=RANK", e.g. "fc1=16"
    verify_images: int = 4  # test images whose real activations verify every layer
    simulators: tuple[str, ...] = field(default=SIMULATORS)
    hil_images: int = 360  # test images through hardware in the loop (0: skip; capped at all)
    hil_simulator: str = "verilator"
    whole_images: int = 360  # test images through the whole-model RTL (0: skip; capped at all)
    whole_synth: bool = True  # Yosys on the whole-model Verilog (~4 min; --quick: off)
    synth: bool = True  # Yosys resource check of the emitted Verilog

    def quick(self) -> RunConfig:
        """Same path, fewer epochs: for tests and a first look."""
        return dataclasses.replace(self, float_epochs=min(self.float_epochs, 40),
                                   qat_epochs=min(self.qat_epochs, 5),
                                   hil_images=min(self.hil_images, 32),
                                   whole_images=min(self.whole_images, 32),
                                   whole_synth=False)

    def validate(self) -> RunConfig:
        if self.model not in PRESETS:
            raise BadInput(f"unknown model '{self.model}'; known: {', '.join(PRESETS)}")
        get_board(self.board)
        for name in ("float_epochs", "verify_images"):
            if getattr(self, name) < 1:
                raise BadInput(f"{name} must be at least 1")
        if self.qat_epochs < 0:
            raise BadInput("qat_epochs must be 0 (calibration only: post-training) or more")
        if not 0.0 <= self.kd_weight <= 1.0:
            raise BadInput("kd_weight must be between 0 and 1")
        if self.kd_temperature <= 0 or self.float_lr <= 0 or self.qat_lr <= 0:
            raise BadInput("kd_temperature, float_lr and qat_lr must be positive")
        if self.hil_images < 0:
            raise BadInput("hil_images must be 0 (skip) or more")
        if self.whole_images < 0:
            raise BadInput("whole_images must be 0 (skip) or more")
        if self.hil_simulator not in RTL_SIMULATORS:
            raise BadInput(f"hil_simulator must be one of {', '.join(RTL_SIMULATORS)}")
        self._validate_compression()
        unknown = [s for s in self.simulators if s not in SIMULATORS]
        if unknown or not self.simulators:
            raise BadInput(f"simulators must be a non-empty subset of {', '.join(SIMULATORS)}")
        return self


    def _validate_compression(self) -> None:
        bits = {self.weight_bits, *self.layer_bit_overrides().values()}
        if self.shared_code_bits:
            bits.add(self.shared_code_bits)
        if bad := sorted(bits - set(SUPPORTED_BITS)):
            raise BadInput(f"weight bit-width {bad[0]} is not supported; use one of "
                           f"{', '.join(map(str, SUPPORTED_BITS))}")
        if self.prune not in PRUNE_METHODS:
            raise BadInput(f"prune must be one of {', '.join(PRUNE_METHODS)}, got '{self.prune}'")
        if not 0.0 <= self.prune_sparsity < 1.0:
            raise BadInput(f"prune_sparsity must be in [0, 1), got {self.prune_sparsity}")
        n, m = self.nm
        if not 1 <= n < m:
            raise BadInput(f"prune_nm needs 1 <= N < M, got {n}:{m}")
        if self.lowrank not in LOWRANK_METHODS:
            raise BadInput(f"lowrank must be one of {', '.join(LOWRANK_METHODS)}, "
                           f"got '{self.lowrank}'")
        if not 0.0 < self.lowrank_keep < 1.0:
            raise BadInput(f"lowrank_keep must be in (0, 1), got {self.lowrank_keep}")
        if not 0.0 <= self.lowrank_sparse < 1.0:
            raise BadInput(f"lowrank_sparse must be in [0, 1), got {self.lowrank_sparse}")
        if self.lowrank_compensate < 0 or self.shared_rank < 0:
            raise BadInput("lowrank_compensate and shared_rank must be 0 or more")
        if any(self.shared_ranks().values()) and self.lowrank != "none":
            raise BadInput("shared_rank and lowrank both factorise the block layers; pick one")
        if self.prune in ("heads", "neurons") and (any(self.shared_ranks().values())
                                                   or self.lowrank != "none"):
            raise BadInput(f"prune = '{self.prune}' removes rows of dense layers; it cannot "
                           f"combine with low-rank or shared-decoder layers")

    @property
    def nm(self) -> tuple[int, int]:
        n, sep, m = self.prune_nm.partition(":")
        if not (sep and n.isdigit() and m.isdigit()):
            raise BadInput(f"prune_nm must look like '2:4', got '{self.prune_nm}'")
        return int(n), int(m)

    def shared_ranks(self) -> dict[str, int]:
        """Decoder rank per layer type: `shared_type_ranks` over `shared_rank` (0: not shared)."""
        ranks = dict.fromkeys(("qkv", "proj", "fc1", "fc2"), self.shared_rank)
        for entry in self.shared_type_ranks:
            kind, sep, rank = entry.partition("=")
            if not (sep and kind.strip() in ranks and rank.strip().isdigit()):
                raise BadInput(f"shared_type_ranks entry '{entry}' must look like 'fc1=16' "
                               f"(types: qkv, proj, fc1, fc2)")
            ranks[kind.strip()] = int(rank)
        return ranks

    def layer_bit_overrides(self) -> dict[str, int]:
        """{glob: bits} from `layer_bits` entries "GLOB=BITS"."""
        out = {}
        for entry in self.layer_bits:
            glob, sep, bits = entry.partition("=")
            if not (sep and glob and bits.strip().isdigit()):
                raise BadInput(f"layer_bits entry '{entry}' must look like 'head=8' or "
                               f"'blocks.*.mlp.fc1=3'")
            out[glob.strip()] = int(bits)
        return out


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
