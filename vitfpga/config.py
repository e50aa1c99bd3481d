"""The run configuration: one validated table per stage, loadable from TOML, defaults that just
work.

    [train]     the float teacher: model, seed, float_epochs, float_lr
    [compress]  the compression recipe (vitfpga.quant.recipe.CompressionRecipe): bits, pruning,
                low-rank, shared decoders and the QAT/distillation knobs
    [hardware]  what is built: board, synth, whole_synth
    [verify]    what is simulated: verify_images, simulators, hil_images, hil_simulator,
                whole_images

Every value is parsed and checked once, when its table is built; the stages read typed fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import get_board
from vitfpga.quant.frontend import frontend_for
from vitfpga.quant.recipe import TABLE_KEYS, CompressionRecipe
from vitfpga.tomlfile import read_toml, typed_value

__all__ = ["SIMULATORS", "HardwareConfig", "RunConfig", "TrainConfig", "VerifyConfig",
           "load_config"]

SIMULATORS = ("csim", "verilator", "icarus")
RTL_SIMULATORS = ("verilator", "icarus")


@dataclass(frozen=True)
class TrainConfig:
    """[train]: the float teacher every compression starts from."""

    model: str = "vit-digits"
    seed: int = 0
    float_epochs: int = 120
    float_lr: float = 3e-3

    def __post_init__(self) -> None:
        frontend_for(self.model)  # an unknown model is one line naming the known ones
        if self.float_epochs < 1:
            raise BadInput("float_epochs must be at least 1")
        if self.float_lr <= 0:
            raise BadInput("float_lr must be positive")


@dataclass(frozen=True)
class HardwareConfig:
    """[hardware]: the board the engine is planned for, and which Yosys checks run."""

    board: str = "pynq-z2"
    synth: bool = True  # Yosys resource check of the emitted Verilog
    whole_synth: bool = True  # Yosys on the whole-model Verilog (~4 min; --quick: off)

    def __post_init__(self) -> None:
        get_board(self.board)


@dataclass(frozen=True)
class VerifyConfig:
    """[verify]: how many images go through which simulators."""

    verify_images: int = 4  # test images whose real activations verify every layer
    simulators: tuple[str, ...] = SIMULATORS
    hil_images: int = 360  # test images through hardware in the loop (0: skip; capped at all)
    hil_simulator: str = "verilator"
    whole_images: int = 360  # test images through the whole-model RTL (0: skip; capped at all)

    def __post_init__(self) -> None:
        if self.verify_images < 1:
            raise BadInput("verify_images must be at least 1")
        if self.hil_images < 0:
            raise BadInput("hil_images must be 0 (skip) or more")
        if self.whole_images < 0:
            raise BadInput("whole_images must be 0 (skip) or more")
        if self.hil_simulator not in RTL_SIMULATORS:
            raise BadInput(f"hil_simulator must be one of {', '.join(RTL_SIMULATORS)}")
        unknown = [s for s in self.simulators if s not in SIMULATORS]
        if unknown or not self.simulators:
            raise BadInput(f"simulators must be a non-empty subset of {', '.join(SIMULATORS)}")


@dataclass(frozen=True)
class RunConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    compress: CompressionRecipe = field(default_factory=CompressionRecipe)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)

    def quick(self) -> RunConfig:
        """Same path, fewer epochs: for tests and a first look."""
        r = dataclasses.replace
        return r(self, train=r(self.train, float_epochs=min(self.train.float_epochs, 40)),
                 compress=r(self.compress, qat_epochs=min(self.compress.qat_epochs, 5)),
                 hardware=r(self.hardware, whole_synth=False),
                 verify=r(self.verify, hil_images=min(self.verify.hil_images, 32),
                          whole_images=min(self.verify.whole_images, 32)))

    def to_json(self) -> dict[str, dict[str, Any]]:
        """One object per table, in the TOML form: report.json's "config", a config file that
        gives this run back."""
        plain = {name: {k: list(v) if isinstance(v, tuple) else v
                        for k, v in dataclasses.asdict(getattr(self, name)).items()}
                 for name in ("train", "hardware", "verify")}
        return {"train": plain["train"], "compress": self.compress.to_table(),
                "hardware": plain["hardware"], "verify": plain["verify"]}


# Each table's keys and their TOML types.
TABLES: dict[str, dict[str, Any]] = {
    "train": get_type_hints(TrainConfig),
    "compress": TABLE_KEYS,
    "hardware": get_type_hints(HardwareConfig),
    "verify": get_type_hints(VerifyConfig),
}


def _home(key: str) -> str | None:
    return next((name for name, keys in TABLES.items() if key in keys), None)


def _read_table(path: Path, name: str, raw: Any) -> dict[str, Any]:
    keys = TABLES[name]
    if not isinstance(raw, dict):
        raise BadInput(f"config file {path}: '{name}' must be a table ([{name}] with keys "
                       f"{', '.join(keys)})")
    values = {}
    for key, value in raw.items():
        if key not in keys:
            home = _home(key)
            hint = f"; it lives in the [{home}] table" if home else ""
            raise BadInput(f"config file {path}: unknown key '{key}' in [{name}]; its keys: "
                           f"{', '.join(keys)}{hint}")
        try:
            values[key] = typed_value(key, value, keys[key])
        except BadInput as e:
            raise BadInput(f"config file {path}: [{name}] {e}") from None
    return values


def _read_file(path: Path) -> dict[str, dict[str, Any]]:
    """{table: {key: typed value}} from the TOML file; a key of the old flat form (no table)
    is refused with the table it now lives in."""
    raw = read_toml(path, "config file")
    tables: dict[str, dict[str, Any]] = {name: {} for name in TABLES}
    for key, value in raw.items():
        if key in TABLES:
            tables[key] = _read_table(path, key, value)
        elif home := _home(key):
            raise BadInput(f"config file {path}: key '{key}' now lives in the [{home}] table")
        else:
            raise BadInput(f"config file {path}: unknown key '{key}'; the tables are "
                           f"{', '.join(f'[{t}]' for t in TABLES)}")
    return tables


def load_config(path: Path | None, **overrides: Any) -> RunConfig:
    """Defaults, then the TOML file, then command-line overrides by key name (None means not
    given), e.g. load_config(path, board="kv260")."""
    tables: dict[str, dict[str, Any]] = ({name: {} for name in TABLES} if path is None
                                         else _read_file(path))
    for key, value in overrides.items():
        home = _home(key)
        if home is None:
            raise ValueError(f"load_config: '{key}' is no table's key")
        if value is not None:
            tables[home][key] = value
    return RunConfig(train=TrainConfig(**tables["train"]),
                     compress=CompressionRecipe.from_table(tables["compress"]),
                     hardware=HardwareConfig(**tables["hardware"]),
                     verify=VerifyConfig(**tables["verify"]))
