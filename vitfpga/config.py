"""The run configuration: one validated table per stage, loadable from TOML, defaults that just
work.

    [train]     the float teacher: model (a preset, timm:NAME, torchvision:NAME or
                package.module:factory), model_args (JSON keyword arguments), weights (a float
                checkpoint: no teacher training), device, seed, float_epochs, float_lr
    [data]      the images: source (an image folder or an .npz; empty: the built-in digits),
                max_images, mean, std, test_fraction
    [compress]  the compression recipe (vitfpga.quant.recipe.CompressionRecipe): bits, pruning,
                low-rank, shared decoders and the QAT/distillation knobs
    [hardware]  what is built: board, synth, whole_synth
    [verify]    what is simulated: verify_images, simulators, hil_images, hil_simulator,
                whole_images

Every value is parsed and checked once, when its table is built; the stages read typed fields.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.whole import WHOLE_MAX_LANES
from vitfpga.quant.frontend import check_model_name
from vitfpga.quant.recipe import TABLE_KEYS, CompressionRecipe
from vitfpga.tomlfile import read_toml, typed_value

__all__ = ["SIMULATORS", "DataConfig", "HardwareConfig", "RunConfig", "TrainConfig",
           "VerifyConfig", "check_sources", "load_config"]

SIMULATORS = ("csim", "verilator", "icarus")
RTL_SIMULATORS = ("verilator", "icarus")


DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """[train]: the float teacher every compression starts from."""

    model: str = "vit-digits"
    model_args: str = ""  # a JSON object of the model constructor's keyword arguments
    weights: str = ""  # a float checkpoint (.pt, .pth, .safetensors): the teacher, untrained
    device: str = "auto"  # where training, QAT and calibration run; export is on the CPU
    seed: int = 0
    float_epochs: int = 120
    float_lr: float = 3e-3

    def __post_init__(self) -> None:
        check_model_name(self.model)  # one line naming the known forms; nothing is built yet
        self.model_kwargs()
        if self.device not in DEVICES:
            raise BadInput(f"device must be one of {', '.join(DEVICES)}, got '{self.device}'")
        if self.float_epochs < 1:
            raise BadInput("float_epochs must be at least 1")
        if self.float_lr <= 0:
            raise BadInput("float_lr must be positive")


    def model_kwargs(self) -> dict[str, Any]:
        """`model_args` parsed: a JSON object, or one line saying what is wrong."""
        if not self.model_args.strip():
            return {}
        try:
            args = json.loads(self.model_args)
        except ValueError as e:
            raise BadInput(f"model_args is not valid JSON ({e}): give an object such as "
                           f"'{{\"img_size\": 32, \"depth\": 2}}'") from None
        if not isinstance(args, dict):
            raise BadInput("model_args must be a JSON object of keyword arguments")
        return args


@dataclass(frozen=True)
class DataConfig:
    """[data]: the images the teacher trains on and every later stage tests on."""

    source: str = ""  # an ImageFolder directory or an .npz (x, y); empty: the built-in digits
    max_images: int = 0  # a stratified subset of this many images (0: all)
    mean: tuple[float, ...] = ()  # per channel; empty: the model's own data config
    std: tuple[float, ...] = ()
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.max_images < 0:
            raise BadInput("max_images must be 0 (all) or more")
        if len(self.mean) != len(self.std):
            raise BadInput("mean and std must have the same number of channels")
        if any(v <= 0 for v in self.std):
            raise BadInput("std values must be positive")
        if not 0.0 < self.test_fraction < 1.0:
            raise BadInput("test_fraction must be between 0 and 1")


@dataclass(frozen=True)
class HardwareConfig:
    """[hardware]: the board the engine is planned for, and which Yosys checks run."""

    board: str = "pynq-z2"
    synth: bool = True  # Yosys resource check of the emitted Verilog
    whole_synth: bool = True  # Yosys on the whole-model Verilog (~4 min; --quick: off)
    # The whole-model search's lane cap (PE x row groups x SIMD); the board's resources decide
    # below it. A smaller cap gives a smaller design that simulates faster (the end-to-end
    # tests use 64).
    whole_max_lanes: int = WHOLE_MAX_LANES

    def __post_init__(self) -> None:
        get_board(self.board)
        if self.whole_max_lanes < 1:
            raise BadInput("whole_max_lanes must be at least 1")


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


def check_sources(cfg: RunConfig) -> None:
    """The files a training run reads exist (a saved run's config may name files since
    moved, so this is checked when a run starts, not whenever a config is read)."""
    if cfg.train.weights and not Path(cfg.train.weights).is_file():
        raise BadInput(f"weights file {cfg.train.weights} does not exist")
    if cfg.data.source and not Path(cfg.data.source).exists():
        raise BadInput(f"data {cfg.data.source} does not exist (give an image folder, or an "
                       f".npz with x and y)")


@dataclass(frozen=True)
class RunConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    compress: CompressionRecipe = field(default_factory=CompressionRecipe)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)

    def quick(self) -> RunConfig:
        """Same path, fewer epochs: for tests and a first look."""
        r = dataclasses.replace
        return r(self, train=r(self.train, float_epochs=min(self.train.float_epochs, 40)),
                 compress=r(self.compress, qat_epochs=min(self.compress.qat_epochs, 5)),
                 hardware=r(self.hardware, whole_synth=False),
                 # one image's activations still drive every layer on every simulator
                 verify=r(self.verify, verify_images=1,
                          hil_images=min(self.verify.hil_images, 32),
                          whole_images=min(self.verify.whole_images, 32)))

    def to_json(self) -> dict[str, dict[str, Any]]:
        """One object per table, in the TOML form: report.json's "config", a config file that
        gives this run back."""
        plain = {name: {k: list(v) if isinstance(v, tuple) else v
                        for k, v in dataclasses.asdict(getattr(self, name)).items()}
                 for name in ("train", "data", "hardware", "verify")}
        return {"train": plain["train"], "data": plain["data"],
                "compress": self.compress.to_table(),
                "hardware": plain["hardware"], "verify": plain["verify"]}


# Each table's keys and their TOML types.
TABLES: dict[str, dict[str, Any]] = {
    "train": get_type_hints(TrainConfig),
    "data": get_type_hints(DataConfig),
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
    return RunConfig(train=TrainConfig(**tables["train"]), data=DataConfig(**tables["data"]),
                     compress=CompressionRecipe.from_table(tables["compress"]),
                     hardware=HardwareConfig(**tables["hardware"]),
                     verify=VerifyConfig(**tables["verify"]))
