"""A user's float weights (`--weights FILE`) loaded into the source module they were saved from.

A `.pt` / `.pth` file holds a state dict (loaded with weights_only=True: tensors, no code), or a
dict holding one under "state_dict" or "model" (training checkpoints); `.safetensors` holds one.
Loading is strict: every key of the module, with its shape, and no other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from vitfpga.errors import BadInput

__all__ = ["load_weights", "read_state_dict"]

_SUFFIXES = (".pt", ".pth", ".safetensors")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read(path: Path) -> object:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file raises whatever its reader raises
        raise BadInput(f"weights {path}: cannot read it ({_first_line(exc)})") from None


def read_state_dict(file: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in `file`; BadInput (one line naming the file) for anything else."""
    path = Path(file)
    if path.suffix not in _SUFFIXES:
        raise BadInput(f"weights {path}: expected a .pt, .pth or .safetensors state dict")
    if not path.is_file():
        raise BadInput(f"weights {path}: no such file")
    data = _read(path)
    if isinstance(data, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(data.get(key), Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not data or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()):
        raise BadInput(f"weights {path}: not a state dict (a mapping of names to tensors)")
    return dict(data)


def load_weights(module: nn.Module, file: str | Path) -> None:
    """Load `file` into `module`, strictly: the first missing, unexpected or differently shaped
    key is named in one line."""
    state = read_state_dict(file)
    own = module.state_dict()
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise BadInput(f"weights {file}: {key} has shape {tuple(value.shape)}, the model's "
                           f"{tuple(own[key].shape)}")
    try:
        # Non-strict so that a module's own key upgrades (_load_from_state_dict) still apply;
        # any key left over either way is refused below, as strict loading would.
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise BadInput(f"weights {file}: {_first_line(exc)}") from None
    if result.missing_keys:
        raise BadInput(f"weights {file}: missing key {result.missing_keys[0]} "
                       f"({len(result.missing_keys)} missing)")
    if result.unexpected_keys:
        raise BadInput(f"weights {file}: unexpected key {result.unexpected_keys[0]} "
                       f"({len(result.unexpected_keys)} unexpected)")
