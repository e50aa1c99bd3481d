"""A run directory: the one place that names its artifacts.

`vitfpga run` and `vitfpga compress` write one; `plan`, `generate` and `export` read one back.
What they read are inputs written for that purpose (`config.toml`, the resolved configuration;
`model.npz`, the integer model; `structure.json` and `qat.pt`, the Brevitas student), never
`report.json`, which is an output only.
"""

from __future__ import annotations

import json
from pathlib import Path

from vitfpga.config import RunConfig, load_config
from vitfpga.errors import BadInput
from vitfpga.ir import IntModel, load_model

__all__ = ["RunDir", "config_toml"]


class RunDir:
    """Paths of a run's artifacts, and their validated loads (each failure one line)."""

    CONFIG = "config.toml"  # the resolved configuration: what the run was asked to do
    FLOAT = "float.pt"  # the float teacher's state dict
    QAT = "qat.pt"  # the Brevitas student's state dict
    STRUCTURE = "structure.json"  # the student's slot structure (bits, ranks, sharing)
    MODEL = "model.npz"  # the integer model (`IntModel.save`)
    PLAN = "plan.json"  # the engine plan
    VECTORS = "vectors.npz"  # every layer's verified int8 inputs and golden outputs
    PROJECT = "project"  # the host-offload bitstream project
    WHOLE = "whole_model"  # the whole-model bitstream project
    BUILD = "build"  # simulation and synthesis builds and logs
    REPORT_JSON = "report.json"
    REPORT_MD = "report.md"
    REPORT_PNG = "report.png"
    WHOLE_PNG = "whole_model.png"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def build(self, name: str) -> Path:
        """A build folder of one tool (`build/yosys`, `build/vit`, ...)."""
        return self.path / self.BUILD / name

    def require(self, *names: str) -> None:
        """BadInput unless every named artifact is there."""
        missing = [n for n in (self.CONFIG, *names) if not (self.path / n).exists()]
        if missing:
            raise BadInput(f"{self.path} is not a vitfpga run directory: no "
                           f"{', '.join(missing)} (written by `vitfpga run` and "
                           f"`vitfpga compress`)")

    def config(self) -> RunConfig:
        """The configuration the run was made with (its own `config.toml`)."""
        self.require()
        return load_config(self.path / self.CONFIG)

    def model(self) -> IntModel:
        """The integer model, validated: a bad file is one line naming it, the layer and the
        value."""
        self.require(self.MODEL)
        path = self.path / self.MODEL
        try:
            return load_model(str(path))
        except (OSError, ValueError) as e:
            text = " ".join(str(e).split("\n"))
            raise BadInput(text if str(path) in text else f"{path}: {text}") from None

    def describe(self) -> str:
        """How reports name the run's model: its preset and where it came from."""
        return f"{self.config().train.model} from {self.path}"


def config_toml(cfg: RunConfig) -> str:
    """`cfg` as a TOML file that `load_config` reads back to an equal configuration.

    Every value is a string, a number, a boolean or a list of those, whose JSON spelling is
    also valid TOML."""
    lines: list[str] = []
    for table, values in cfg.to_json().items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)
