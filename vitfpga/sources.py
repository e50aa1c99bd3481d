"""What the planner plans: the integer layers of a finished run, or a hardware-scale preset with
seeded random weights (labelled as such wherever it is reported)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vitfpga.errors import BadInput
from vitfpga.hls.emit.pynq import DriverSource
from vitfpga.ir import IntLinear, IntModel
from vitfpga.quant.model import HARDWARE_PRESETS, linear_shapes
from vitfpga.quant.structure import SlotSpec, dense_structure, layer_type
from vitfpga.quant.synthetic import structure_layers
from vitfpga.rundir import RunDir

if TYPE_CHECKING:
    from vitfpga.quant.data import Split

__all__ = ["TEST_IMAGES", "driver_source", "preset_driver_source", "preset_int_model",
           "preset_layers", "run_driver_source", "run_int_model", "run_layers", "run_model_file"]


def run_model_file(run_dir: Path) -> tuple[IntModel, str]:
    """(the integer model, its preset name) of a `vitfpga run` or `compress` directory: the
    model, its rows and its spec from `model.npz`, validated; the name from the run's
    `config.toml`. A bad file is one line naming it."""
    run = RunDir(run_dir)
    return run.model(), run.config().train.model


def run_layers(run_dir: Path) -> tuple[dict[str, IntLinear], dict[str, int], str]:
    """(layers, rows per image, description) from a `vitfpga run` or `compress` directory."""
    model, name = run_model_file(run_dir)
    return model.layers, model.rows(), f"{name} from {run_dir}"


def preset_layers(preset: str, weight_bits: int, seed: int = 0, rank: float | None = None
                  ) -> tuple[dict[str, IntLinear], dict[str, int], str]:
    """Seeded random integer layers of a hardware preset's shapes.

    With `rank` (a fraction of min(K, N)), every block layer is factorised as `(x·U)·V`, two
    program entries `NAME.u` (K -> r) and `NAME.v` (r -> N) with an int8 tensor between them,
    which is how low-rank and shared-decoder layers run on the engine (design.md §3)."""
    if preset not in HARDWARE_PRESETS:
        raise BadInput(f"unknown preset '{preset}'; known: {', '.join(HARDWARE_PRESETS)}")
    if rank is not None and not 0 < rank < 1:
        raise BadInput(f"--rank must be a fraction between 0 and 1, got {rank}")
    cfg = HARDWARE_PRESETS[preset]
    structure = dense_structure(cfg, weight_bits)
    if rank is not None:
        for name, k, n, _ in linear_shapes(cfg):
            if layer_type(name) is not None:
                structure[name] = SlotSpec(bits=weight_bits, rank=max(1, round(rank * min(k, n))))
    layers, rows = structure_layers(structure, cfg, seed)
    form = "" if rank is None else f", block layers low-rank at {rank:g} x min(K, N)"
    label = (f"{preset} dimensions{form}, seeded random int{weight_bits} weights "
             f"(not a trained model)")
    return layers, rows, label


def run_int_model(run_dir: Path) -> tuple[IntModel, dict[str, IntLinear], dict[str, int], str]:
    """(the whole integer model, its layers, rows per image, description) of a `vitfpga run`
    directory, for whole-model plans."""
    model, name = run_model_file(run_dir)
    return model, model.layers, model.rows(), f"{name} from {run_dir}"


def preset_int_model(preset: str, weight_bits: int, seed: int = 0
                     ) -> tuple[IntModel, dict[str, IntLinear], dict[str, int], str]:
    """A whole integer ViT of a hardware preset's shapes, for whole-model plans: the seeded
    random layers of `preset_layers`, and LayerNorm, embedding, softmax and GELU parameters
    calibrated on a randomly initialised float ViT of the same shape with random images. Its
    arithmetic is exact and its shapes are real; its outputs mean nothing."""
    import torch

    from vitfpga.quant.intvit import calibrate_int_vit
    from vitfpga.quant.model import ViT

    layers, rows, label = preset_layers(preset, weight_bits, seed)
    cfg = HARDWARE_PRESETS[preset]
    torch.manual_seed(seed)
    images = torch.randn(2, cfg.in_chans, cfg.image_size, cfg.image_size)
    model = calibrate_int_vit(ViT(cfg), layers, images)
    return model, layers, rows, label


TEST_IMAGES = 512  # at most, in a driver package: enough for accuracy, small on the board


def run_driver_source(run_dir: Path) -> DriverSource:
    """The trained integer model and the run's test images, for the board's driver package."""
    from vitfpga.quant.data import load_digits_split

    run = RunDir(run_dir)
    train = run.config().train
    return driver_source(train.model, run.model(), load_digits_split(seed=train.seed),
                         run / RunDir.MODEL)


def driver_source(name: str, model: IntModel, split: Split, model_file: Path) -> DriverSource:
    """What a driver package carries of a trained model: `vitfpga run` hands it the model it
    just exported, `generate RUN_DIR` the one the run saved (`model_file`), so both package the
    same."""
    return DriverSource(model=name, spec=model.spec, model_file=model_file,
                        images=split.x_test[:TEST_IMAGES].numpy(),
                        labels=split.y_test[:TEST_IMAGES].numpy())


def preset_driver_source(preset: str) -> DriverSource:
    """A preset's package: its layers only (seeded random weights run layer by layer)."""
    return DriverSource(model=preset, spec=HARDWARE_PRESETS[preset].spec())
