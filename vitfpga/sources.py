"""What the planner plans: the integer layers of a finished run, or a hardware-scale preset with
seeded random weights (labelled as such wherever it is reported)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vitfpga.errors import BadInput
from vitfpga.hls.emit.pynq import DriverSource
from vitfpga.ir import IntLinear, IntModel
from vitfpga.quant.model import HARDWARE_PRESETS, ViTConfig, linear_shapes
from vitfpga.quant.structure import SlotSpec, dense_structure, layer_type
from vitfpga.quant.synthetic import structure_layers
from vitfpga.rundir import RunDir
from vitfpga.runtime.codecs import UnknownCodec, codec_for

if TYPE_CHECKING:
    from vitfpga.config import RunConfig
    from vitfpga.quant.data import Split

__all__ = ["TEST_IMAGES", "calibrated_int_model", "driver_source", "model_driver_source",
           "preset_driver_source", "preset_int_model", "preset_layers", "run_driver_source",
           "run_int_model", "run_layers", "run_model_file", "user_int_model"]


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


def preset_layers(preset: str, weight_bits: int, seed: int = 0, rank: float | None = None,
                  codec: str = "dense") -> tuple[dict[str, IntLinear], dict[str, int], str]:
    """Seeded random integer layers of a hardware preset's shapes, every one stored as `codec`
    (its random weights shaped to it: N:M pruned, or mapped onto a 2^K-value codebook).

    With `rank` (a fraction of min(K, N)), every block layer is factorised as `(x·U)·V`, two
    program entries `NAME.u` (K -> r) and `NAME.v` (r -> N) with an int8 tensor between them,
    which is how low-rank and shared-decoder layers run on the engine (design.md §3)."""
    if preset not in HARDWARE_PRESETS:
        raise BadInput(f"unknown preset '{preset}'; known: {', '.join(HARDWARE_PRESETS)}")
    if rank is not None and not 0 < rank < 1:
        raise BadInput(f"--rank must be a fraction between 0 and 1, got {rank}")
    try:
        codec_for(codec, weight_bits)
    except UnknownCodec as e:
        raise BadInput(f"--codec {codec}: {e}") from None
    cfg = HARDWARE_PRESETS[preset]
    structure = dense_structure(cfg, weight_bits)
    if rank is not None:
        for name, k, n, _ in linear_shapes(cfg):
            if layer_type(name) is not None:
                structure[name] = SlotSpec(bits=weight_bits, rank=max(1, round(rank * min(k, n))))
    layers, rows = structure_layers(structure, cfg, seed, codec)
    form = "" if rank is None else f", block layers low-rank at {rank:g} x min(K, N)"
    stored = "" if codec == "dense" else f" shaped for and stored as {codec}"
    label = (f"{preset} dimensions{form}, seeded random int{weight_bits} weights{stored} "
             f"(not a trained model)")
    return layers, rows, label


def run_int_model(run_dir: Path) -> tuple[IntModel, dict[str, IntLinear], dict[str, int], str]:
    """(the whole integer model, its layers, rows per image, description) of a `vitfpga run`
    directory, for whole-model plans."""
    model, name = run_model_file(run_dir)
    return model, model.layers, model.rows(), f"{name} from {run_dir}"


def preset_int_model(preset: str, weight_bits: int, seed: int = 0, codec: str = "dense"
                     ) -> tuple[IntModel, dict[str, IntLinear], dict[str, int], str]:
    """A whole integer ViT of a hardware preset's shapes, for whole-model plans: the seeded
    random layers of `preset_layers`, and LayerNorm, embedding, softmax and GELU parameters
    calibrated on a randomly initialised float ViT of the same shape with random images. Its
    arithmetic is exact and its shapes are real; its outputs mean nothing."""
    layers, rows, label = preset_layers(preset, weight_bits, seed, codec=codec)
    return calibrated_int_model(HARDWARE_PRESETS[preset], layers, seed), layers, rows, label


def calibrated_int_model(cfg: ViTConfig, layers: dict[str, IntLinear], seed: int = 0
                         ) -> IntModel:
    """The whole integer ViT of shape `cfg` around given integer layers: every other parameter
    calibrated on a seeded random float ViT of that shape with random images (tests build
    DeiT-width models of any depth and token count this way)."""
    import torch

    from vitfpga.quant.intvit import calibrate_int_vit
    from vitfpga.quant.model import ViT

    torch.manual_seed(seed)
    images = torch.randn(2, cfg.in_chans, cfg.image_size, cfg.image_size)
    return calibrate_int_vit(ViT(cfg), layers, images)


def user_int_model(cfg: RunConfig, weight_bits: int, calibration: int = 8
                   ) -> tuple[IntModel, str]:
    """(the integer model, its description) of a user's model for `plan` and `generate
    --model`: imported, post-training quantised at `weight_bits` (no QAT) and calibrated on
    `calibration` images of `--data`, or without data on seeded random images (labelled so:
    the scales are then placeholders; the shapes and the arithmetic are real)."""
    import torch

    from vitfpga.model_steps import load_split
    from vitfpga.quant.compress import calibration_images, post_training_quantise
    from vitfpga.quant.frontend import frontend_for, import_check
    from vitfpga.quant.recipe import CompressionRecipe

    t = cfg.train
    frontend = frontend_for(t.model, t.model_kwargs(), t.weights or None, seed=t.seed)
    spec = frontend.spec
    if cfg.data.source:
        from vitfpga.quant.data import scan_data

        info = scan_data(cfg.data.source or None, cfg.data.max_images, t.seed)
        images = calibration_images(load_split(cfg, spec, info))[:calibration]
        where = f"calibrated on {len(images)} images of {cfg.data.source}"
    else:
        gen = torch.Generator().manual_seed(t.seed)
        images = torch.randn(calibration, spec.in_chans, spec.image_size, spec.image_size,
                             generator=gen)
        where = "calibrated on random images (placeholder scales)"
    weights = "its float weights" if frontend.pretrained else "random init"
    recipe = CompressionRecipe(weight_bits=weight_bits, qat_epochs=0)
    source = frontend.source_model()
    vit = frontend.to_vit(source)
    check = import_check(source, vit, images[:2]).require(t.model)
    model = post_training_quantise(recipe, frontend.config, vit, images)
    return model, (f"{t.model} ({weights}; import check max |Δ logits| "
                   f"{check.max_abs_diff:.2g} of {check.logit_range:.2g}), int{weight_bits} "
                   f"post-training quantised, {where}")


TEST_IMAGES = 512  # at most, in a driver package: enough for accuracy, small on the board


def run_driver_source(run_dir: Path) -> DriverSource:
    """The trained integer model and the run's test images, for the board's driver package."""
    from vitfpga.model_steps import load_split
    from vitfpga.quant.data import scan_data

    run = RunDir(run_dir)
    cfg, model = run.config(), run.model()
    info = scan_data(cfg.data.source or None, cfg.data.max_images, cfg.train.seed)
    return driver_source(cfg.train.model, model, load_split(cfg, model.spec, info),
                         run / RunDir.MODEL)


def driver_source(name: str, model: IntModel, split: Split, model_file: Path) -> DriverSource:
    """What a driver package carries of a trained model: `vitfpga run` hands it the model it
    just exported, `generate RUN_DIR` the one the run saved (`model_file`), so both package the
    same."""
    images, labels = split.test.take(TEST_IMAGES)
    return DriverSource(model=name, spec=model.spec, model_file=model_file,
                        images=images.numpy(), labels=labels.numpy())


def preset_driver_source(preset: str, model: IntModel | None = None) -> DriverSource:
    """A preset's package: its layers only (seeded random weights run layer by layer), or with
    `model` (the whole-model design) that whole integer model."""
    return DriverSource(model=preset, spec=HARDWARE_PRESETS[preset].spec(), int_model=model)


def model_driver_source(name: str, model: IntModel, whole: bool = False) -> DriverSource:
    """A user's model planned without a run (`generate --model`): its layers only, as a
    preset's (post-training quantised, no test images of its own), or with `whole` (the
    whole-model design) the whole integer model."""
    return DriverSource(model=name, spec=model.spec, int_model=model if whole else None)
