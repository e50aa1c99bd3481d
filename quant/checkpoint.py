"""Reading a run directory's Brevitas student back (`vitfpga export`): its config, structure and
weights, each checked, every failure one line."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import torch

from vitfpga.errors import BadInput
from vitfpga.quant.model import PRESETS, ViT
from vitfpga.quant.qat import float_vit, quant_vit
from vitfpga.quant.structure import SlotSpec, Structure, dense_structure

__all__ = ["load_student", "read_structure", "run_model"]


def read_structure(run_dir: Path, model: str) -> Structure:
    path = run_dir / "structure.json"
    cfg = PRESETS[model]
    if not path.is_file():  # runs from before compression kept every slot dense
        config = json.loads((run_dir / "report.json").read_text())["config"]
        return dense_structure(cfg, int(config.get("compress", config)["weight_bits"]))
    try:
        raw = json.loads(path.read_text())
        structure = {slot: SlotSpec(**spec) for slot, spec in raw.items()}
    except (ValueError, TypeError) as e:
        raise BadInput(f"{path}: corrupt structure ({e})") from None
    if set(structure) != set(dense_structure(cfg, 8)):
        raise BadInput(f"{path}: the slots are not those of {model}")
    return structure


def run_model(run_dir: Path, *needs: str) -> str:
    """The preset name a run directory was trained for, after checking it holds `needs`."""
    report = run_dir / "report.json"
    if not all((run_dir / f).is_file() for f in ("report.json", *needs)):
        raise BadInput(f"{run_dir} is not a vitfpga run directory ({', '.join(needs)} and "
                       f"report.json are written by `vitfpga run` and `vitfpga compress`)")
    try:
        config = json.loads(report.read_text())["config"]
        model = config.get("train", config)["model"]  # per table; flat before tables
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BadInput(f"{report}: corrupt report ({type(e).__name__}: {e})") from None
    if model not in PRESETS:
        raise BadInput(f"{report}: unknown model '{model}'")
    return model


def load_student(run_dir: Path) -> tuple[ViT, torch.Tensor]:
    """(the trained Brevitas student in eval mode, one example input) from a run directory."""
    model = run_model(run_dir, "qat.pt")
    cfg, structure = PRESETS[model], read_structure(run_dir, model)
    student = quant_vit(cfg, float_vit(cfg, structure), structure)
    weights = run_dir / "qat.pt"
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        student.load_state_dict(state)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile,
            AttributeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadInput(f"{weights}: corrupt or mismatched checkpoint ({first})") from None
    student.eval()
    return student, torch.zeros(1, cfg.in_chans, cfg.image_size, cfg.image_size)
