"""What the planner plans: the integer layers of a finished run, or a hardware-scale preset with
seeded random weights (labelled as such wherever it is reported)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from vitfpga.errors import BadInput
from vitfpga.ir import IntLinear
from vitfpga.quant.model import HARDWARE_PRESETS, PRESETS, linear_shapes
from vitfpga.quant.synthetic import random_layer

__all__ = ["preset_layers", "run_layers"]


def run_layers(run_dir: Path) -> tuple[dict[str, IntLinear], dict[str, int], str]:
    """(layers, rows per image, description) from `vitfpga run`'s output directory."""
    from vitfpga.quant.export import load_int_model

    npz, report = run_dir / "int_model.npz", run_dir / "report.json"
    if not npz.is_file() or not report.is_file():
        raise BadInput(f"{run_dir} is not a vitfpga run directory (int_model.npz and report.json "
                       f"are written by `vitfpga run`)")
    try:
        model = json.loads(report.read_text())["config"]["model"]
        layers = load_int_model(str(npz))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise BadInput(f"{run_dir}: corrupt run artifacts ({type(e).__name__}: {e})") from None
    if model not in PRESETS:
        raise BadInput(f"{run_dir}: unknown model '{model}' in report.json")
    rows = {name: r for name, _, _, r in linear_shapes(PRESETS[model])}
    if set(rows) != set(layers):
        raise BadInput(f"{run_dir}: int_model.npz does not hold the layers of {model}")
    return layers, rows, f"{model} from {run_dir}"


def preset_layers(preset: str, weight_bits: int,
                  seed: int = 0) -> tuple[dict[str, IntLinear], dict[str, int], str]:
    if preset not in HARDWARE_PRESETS:
        raise BadInput(f"unknown preset '{preset}'; known: {', '.join(HARDWARE_PRESETS)}")
    shapes = linear_shapes(HARDWARE_PRESETS[preset])
    layers = {name: random_layer(k, n, bits=weight_bits, seed=seed + i, name=name)
              for i, (name, k, n, _) in enumerate(shapes)}
    rows = {name: r for name, _, _, r in shapes}
    label = f"{preset} dimensions, seeded random int{weight_bits} weights (not a trained model)"
    return layers, rows, label
