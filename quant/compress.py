"""From a trained float teacher to a compressed Brevitas student, as the recipe (quant.recipe) says.

The order is fixed and each step is one module's job: choose every slot's form (mixed
precision, low-rank ranks or shared decoders: `structure_for`), build the float model of that
form from the teacher (`quant.factorize`, `quant.shared`), turn it into the Brevitas student,
then quantisation-aware training with distillation while pruning masks grow (`quant.prune`) and,
for shared decoders, while the learned encoders still produce the codes (`quant.shared`).
`export_compressed` gives the integer layers, with structurally pruned rows removed.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vitfpga.errors import BadInput
from vitfpga.ir import IntLinear, IntModel, encode_layers
from vitfpga.quant.codecs import codebook_encode
from vitfpga.quant.data import Split
from vitfpga.quant.export import export_linears
from vitfpga.quant.factorize import (
    calibration_inputs,
    factorise_model,
    layer_spectra,
    rank_structure,
)
from vitfpga.quant.intvit import calibrate_int_vit
from vitfpga.quant.model import ViT, ViTConfig, linear_shapes
from vitfpga.quant.prune import Pruner, PruneSpec, shrink_structured
from vitfpga.quant.qat import quant_vit
from vitfpga.quant.recipe import CompressionRecipe, LowRank, Prune
from vitfpga.quant.shared import attach_encoders, drop_encoders, shared_init
from vitfpga.quant.structure import SlotSpec, Structure, layer_type
from vitfpga.quant.train import CPU, train

__all__ = ["Compressed", "base_structure", "calibration_images", "compress", "export_compressed",
           "post_training_quantise", "slot_bits", "structure_for", "teacher_calibration"]

CALIBRATION_IMAGES = 256
ENCODER_SHARE = 0.7  # of the QAT epochs trained with the learned encoders attached

EpochCallback = Callable[[int, float], None]  # (epoch, loss), as train's on_epoch


@dataclass
class Compressed:
    student: ViT  # the trained Brevitas model, masks baked in, encoders dropped
    structure: Structure
    start: ViT  # the float model of the chosen form, before QAT (e.g. factorised teacher)


def slot_bits(recipe: CompressionRecipe, model_cfg: ViTConfig) -> dict[str, int]:
    """Each slot's weight bits: `weight_bits`, then the first `layer_bits` glob that matches."""
    slots = [name for name, _, _, _ in linear_shapes(model_cfg)]
    for glob, _ in recipe.layer_bits:
        if not any(fnmatch.fnmatchcase(s, glob) for s in slots):
            raise BadInput(f"layer_bits '{glob}' matches no layer; layers are "
                           f"{', '.join(slots[:3])}, ..., {slots[-1]}")
    return {s: next((b for g, b in recipe.layer_bits if fnmatch.fnmatchcase(s, g)),
                    recipe.weight_bits) for s in slots}


def base_structure(recipe: CompressionRecipe, model_cfg: ViTConfig) -> Structure:
    """Every slot's form as far as the shapes decide it: bits and shared decoders. Low-rank
    ranks are not in it: they follow from the teacher's spectra (`structure_for`)."""
    bits = slot_bits(recipe, model_cfg)
    base = {slot: SlotSpec(bits=b) for slot, b in bits.items()}
    ranks = recipe.ranks
    if not recipe.shared:
        return base
    code_bits = recipe.shared_code_bits or recipe.weight_bits
    for slot, k, n, _ in linear_shapes(model_cfg):
        kind = layer_type(slot)
        if kind is None or not ranks[kind]:
            continue
        if ranks[kind] >= min(k, n):
            raise BadInput(f"shared rank {ranks[kind]} for {kind} is not below {slot}'s "
                           f"{min(k, n)} (min of K={k}, N={n}); it would not compress")
        base[slot] = SlotSpec(bits=code_bits, rank=ranks[kind], v_bits=bits[slot],
                              shared=True)
    return base


def structure_for(recipe: CompressionRecipe, model_cfg: ViTConfig, teacher: ViT,
                  calib: dict[str, np.ndarray]) -> Structure:
    """Every slot's form. Only block layers are factorised: patch_embed and head are tiny and
    sit at the model's ends, where errors cost the most."""
    base = base_structure(recipe, model_cfg)
    if recipe.shared or recipe.lowrank == LowRank.NONE:
        return base
    blocks = {s: calib[s] for s in base if layer_type(s) is not None}
    spectra = layer_spectra(teacher, blocks, aware=recipe.lowrank == LowRank.AWARE)
    structure = rank_structure(model_cfg, base, recipe.lowrank_keep, spectra)
    if recipe.lowrank_sparse:
        structure = {s: (SlotSpec(**{**spec.to_dict(), "sparse": True}) if spec.factored
                         else spec) for s, spec in structure.items()}
    return structure


def _start_model(recipe: CompressionRecipe, teacher: ViT, structure: Structure,
                 calib: dict[str, np.ndarray], images: torch.Tensor) -> ViT:
    if any(spec.shared for spec in structure.values()):
        return shared_init(teacher, structure, calib)
    if any(spec.factored for spec in structure.values()):
        # Compensation runs layer after layer on the inputs the compressed model so far gives
        # (`images`), through the factors' own bit-widths: on a layer's own inputs the
        # activation-aware factors are already optimal, so only the sequential form helps.
        return factorise_model(teacher, structure, calib,
                               aware=recipe.lowrank == LowRank.AWARE,
                               compensate_steps=recipe.lowrank_compensate,
                               density=recipe.lowrank_sparse, images=images, quantised=True)
    return copy.deepcopy(teacher)


def _prune_spec(recipe: CompressionRecipe) -> PruneSpec | None:
    if recipe.prune == Prune.NONE:
        return None
    n, m = recipe.prune_nm
    spec = PruneSpec(method=str(recipe.prune), sparsity=recipe.prune_sparsity, n=n, m=m)
    try:
        spec.validate()
    except ValueError as e:
        raise BadInput(str(e)) from None
    return spec


@torch.no_grad()
def _calibrate_activations(model: nn.Module, images: torch.Tensor) -> None:
    """Post-training quantisation: let Brevitas' activation quantisers collect their ranges."""
    from brevitas.graph.calibrate import calibration_mode

    with calibration_mode(model):
        for i in range(0, len(images), 64):
            model(images[i:i + 64])
    model.eval()


def calibration_images(split: Split) -> torch.Tensor:
    """The training images every calibration uses: factorisation, activation ranges, and the
    integer model's scales."""
    return split.train.take(CALIBRATION_IMAGES)[0]


def teacher_calibration(teacher: ViT, model_cfg: ViTConfig, split: Split
                        ) -> dict[str, np.ndarray]:
    """Each slot's float input rows in the teacher, on `calibration_images`."""
    teacher.eval()
    slots = [name for name, _, _, _ in linear_shapes(model_cfg)]
    return calibration_inputs(teacher, calibration_images(split), slots)


def compress(recipe: CompressionRecipe, model_cfg: ViTConfig, teacher: ViT, split: Split,
             on_epoch: EpochCallback | None = None, seed: int = 0,
             device: torch.device = CPU) -> Compressed:
    """Teacher -> trained compressed Brevitas student (see the module docstring). `seed` is the
    run's: QAT draws from seed + 1 on, apart from the teacher's own training. QAT runs on
    `device`; everything else, and the student returned, stays on the CPU."""
    calib_images = calibration_images(split)
    calib = teacher_calibration(teacher, model_cfg, split)
    structure = structure_for(recipe, model_cfg, teacher, calib)
    start = _start_model(recipe, teacher, structure, calib, calib_images)
    torch.manual_seed(seed + 1)
    student = quant_vit(model_cfg, start, structure)
    if recipe.qat_epochs == 0:
        _calibrate_activations(student, calib_images)
        return Compressed(student, structure, start)

    spec = _prune_spec(recipe)
    pruner = None if spec is None else Pruner(student, spec, recipe.qat_epochs)
    kwargs = {"lr": recipe.qat_lr, "teacher": teacher, "kd_weight": recipe.kd_weight,
              "temperature": recipe.kd_temperature, "device": device}
    epochs = [recipe.qat_epochs]
    if any(spec.shared for spec in structure.values()):
        first = max(1, math.ceil(ENCODER_SHARE * recipe.qat_epochs))
        epochs = [first, recipe.qat_epochs - first]
        attach_encoders(student, structure, teacher)  # codes = E_t(W_l), W_l the teacher's
    done = 0
    for i, count in enumerate(epochs):
        if i == 1:
            drop_encoders(student)

        def step(e: int, loss: float, offset: int = done) -> None:
            if pruner is not None:
                pruner.step(offset + e)
            if on_epoch is not None:
                on_epoch(offset + e, loss)

        if count:
            train(student, split, epochs=count, seed=seed + 1 + i, on_epoch=step, **kwargs)
            done += count
    if pruner is not None:
        pruner.finalize()
    student.eval()
    return Compressed(student, structure, start)


def post_training_quantise(recipe: CompressionRecipe, model_cfg: ViTConfig, teacher: ViT,
                           images: torch.Tensor) -> IntModel:
    """The integer model of `teacher` compressed by `recipe` without QAT (`qat_epochs` 0):
    Brevitas' activation ranges and the integer scales calibrated on `images`."""
    labels = torch.zeros(len(images), dtype=torch.int64)  # calibration only: nothing trains
    student = compress(recipe, model_cfg, teacher, Split(images, labels, images[:0],
                                                         labels[:0])).student
    return calibrate_int_vit(student, export_compressed(recipe, model_cfg, student), images)


def cluster_weights(layers: dict[str, IntLinear], index_bits: int) -> dict[str, IntLinear]:
    """Each block layer's integer weights moved onto 2^K values of their own (1-D k-means,
    `codebook_encode`), so the engine stores K-bit indices and a per-layer table. The centroids
    are rounded integers between the layer's extremes: the accumulator bound cannot grow."""
    return {name: dataclasses.replace(layer, weight=codebook_encode(layer.weight,
                                                                    index_bits).decode())
            if layer_type(name) else layer for name, layer in layers.items()}


def export_compressed(recipe: CompressionRecipe, model_cfg: ViTConfig,
                      student: nn.Module) -> dict[str, IntLinear]:
    layers = export_linears(student)
    if recipe.prune in (Prune.HEADS, Prune.NEURONS):
        layers = shrink_structured(layers, model_cfg.dim // model_cfg.heads)
    if recipe.codebook_bits:
        layers = cluster_weights(layers, recipe.codebook_bits)
    # Each layer stored in its cheapest exact codec: what the size report counts and the
    # engine's weight memory holds.
    return encode_layers(layers)
