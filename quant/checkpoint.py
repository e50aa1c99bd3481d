"""Reading a run's Brevitas student back (`vitfpga export`): its structure and weights, each
checked, every failure one line. The app layer names the files (vitfpga.rundir)."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import torch

from vitfpga.errors import BadInput
from vitfpga.quant.model import ViT, ViTConfig
from vitfpga.quant.qat import float_vit, quant_vit
from vitfpga.quant.structure import SlotSpec, Structure, dense_structure

__all__ = ["load_student", "read_structure"]


def read_structure(path: Path, cfg: ViTConfig) -> Structure:
    """The student's slot structure (`structure.json`), checked against the model's slots."""
    try:
        raw = json.loads(Path(path).read_text())
        structure = {slot: SlotSpec(**spec) for slot, spec in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise BadInput(f"{path}: corrupt structure ({e})") from None
    if set(structure) != set(dense_structure(cfg, 8)):
        raise BadInput(f"{path}: the slots are not those of the run's model")
    return structure


def load_student(structure_path: Path, weights: Path, cfg: ViTConfig
                 ) -> tuple[ViT, torch.Tensor]:
    """(the trained Brevitas student in eval mode, one example input)."""
    structure = read_structure(structure_path, cfg)
    student = quant_vit(cfg, float_vit(cfg, structure), structure)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        student.load_state_dict(state)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile,
            AttributeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadInput(f"{weights}: corrupt or mismatched checkpoint ({first})") from None
    student.eval()
    return student, torch.zeros(1, cfg.in_chans, cfg.image_size, cfg.image_size)
