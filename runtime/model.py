"""The integer model as the runtime needs it: plain numpy data, read from the `.npz` that
`vitfpga.quant.intvit.save_int_vit` writes, plus the one linear layer the engine computes.

Kept free of vitfpga's own classes (`IntLinear`, `ViTConfig`, torch) so that this package runs
where only numpy is installed (a PYNQ board's ARM core); vitfpga converts its `IntViT` to an
`IntModel` and calls the same code.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .intmath import int_matmul, requantize

__all__ = ["ACC_LIMIT", "CFG_FIELDS", "IntModel", "Layer", "linear_golden", "load_model",
           "slot_layers"]

# The ViTConfig fields, in the order `__cfg__` stores them (vitfpga's tests hold them equal).
CFG_FIELDS = ("image_size", "patch_size", "in_chans", "dim", "depth", "heads", "mlp_ratio",
              "num_classes")
ACC_LIMIT = 2**31  # the engine's accumulators are int32
_LAYER_ARRAYS = ("weight", "bias", "multiplier", "shift", "meta")
_REQUIRED = ("__cfg__", "__layers__", "__scale_names__", "__scale_values__")


@dataclass(eq=False)
class Layer:
    """One linear layer in the integer contract: `acc = bias + x @ weight.T` in int32, then
    `y = clamp((acc*M + 2^(S-1)) >> S, -128, 127)` per output channel, ReLU a clamp at 0.
    The scales are for information (reports, the image quantiser); the arithmetic never reads
    them. Integer arrays are stored as int64."""

    name: str
    weight: np.ndarray  # (N, K)
    bias: np.ndarray  # (N,), fits int32
    multiplier: np.ndarray  # (N,) in [2^30, 2^31)
    shift: np.ndarray  # (N,) in [1, 62]
    relu: bool
    in_scale: float
    out_scale: float

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, dtype=np.int64)
        self.bias = np.asarray(self.bias, dtype=np.int64)
        self.multiplier = np.asarray(self.multiplier, dtype=np.int64)
        self.shift = np.asarray(self.shift, dtype=np.int64)
        self.relu = bool(self.relu)
        self.in_scale, self.out_scale = float(self.in_scale), float(self.out_scale)

    @property
    def k(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n(self) -> int:
        return int(self.weight.shape[0])


@dataclass(eq=False)
class IntModel:
    """The integer ViT: `cfg` by ViTConfig field name, the linear layers by module path, every
    other parameter as an integer array keyed by its path (`blocks.0.norm1.gamma`,
    `blocks.0.add1`, `hop.blocks.0.mlp.fc2.v`, ...), and the calibrated real scales (reports
    only: the forward pass never reads them)."""

    cfg: dict[str, int]
    layers: dict[str, Layer]
    params: dict[str, np.ndarray]
    scales: dict[str, float]

    @property
    def res_bits(self) -> int:
        return int(self.params["meta"][0])

    @property
    def prob_max(self) -> int:
        return int(self.params["meta"][1])

    def input_scale(self) -> float:
        """The scale of the int8 image patches: the patch embedding's input scale."""
        return self.layers[slot_layers(self.layers, "patch_embed")[0]].in_scale


def slot_layers(layers: Mapping[str, object], slot: str) -> list[str]:
    """The integer layers of a slot: `[slot]`, `[slot.u, slot.v]` or `[.u, .v, .s]`."""
    if slot in layers:
        return [slot]
    names = [f"{slot}.{part}" for part in "uvs" if f"{slot}.{part}" in layers]
    if names[:2] != [f"{slot}.u", f"{slot}.v"]:
        raise KeyError(f"slot {slot}: no dense layer and no u/v pair among the integer layers")
    return names


def linear_golden(x: object, layer: Layer) -> np.ndarray:
    """int8 rows (M, K) -> int8 rows (M, N) as int64, exactly as the engine computes them:
    accumulate in int64, refuse what an int32 accumulator could not hold, requantise."""
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != layer.k:
        raise ValueError(f"{layer.name}: expected (rows, {layer.k}) int8 input, "
                         f"got {tuple(x.shape)}")
    if x.size and (x.min() < -128 or x.max() > 127):
        raise ValueError(f"{layer.name}: input values outside int8")
    acc = int_matmul(x, layer.weight.T) + layer.bias
    if acc.size and (acc.max() >= ACC_LIMIT or acc.min() <= -ACC_LIMIT):
        raise OverflowError(f"{layer.name}: int32 accumulator overflow")
    return requantize(acc, layer.multiplier, layer.shift, layer.relu)


def load_model(path: str) -> IntModel:
    """Read the `.npz` that `save_int_vit` writes (no pickles). A missing file raises
    FileNotFoundError; anything else that is not such a model raises ValueError naming it."""
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not an integer model file (an .npz from save_int_vit): "
                         f"{exc}") from exc
    if not hasattr(data, "files"):  # a plain .npy array
        raise ValueError(f"{path}: not an integer model file (an .npz from save_int_vit): "
                         f"it holds one array, not an archive")
    try:
        with data:
            return _parse(data)
    except (KeyError, ValueError, TypeError, IndexError, OSError, EOFError, zipfile.BadZipFile,
            zlib.error) as exc:
        raise ValueError(f"{path}: not a valid integer model file (an .npz from "
                         f"save_int_vit): {exc}") from exc


def _parse(data: np.lib.npyio.NpzFile) -> IntModel:
    missing = [key for key in _REQUIRED if key not in data.files]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    cfg_values = data["__cfg__"].tolist()
    if len(cfg_values) != len(CFG_FIELDS):
        raise ValueError(f"__cfg__ holds {len(cfg_values)} values, expected "
                         f"{len(CFG_FIELDS)} ({', '.join(CFG_FIELDS)})")
    cfg = {field: int(cfg_values[i]) for i, field in enumerate(CFG_FIELDS)}
    grouped: dict[str, dict[str, np.ndarray]] = {str(n): {} for n in data["__layers__"].tolist()}
    params: dict[str, np.ndarray] = {}
    for key in data.files:
        if key.startswith("layer::"):
            parts = key.split("::")
            if len(parts) != 3 or parts[1] not in grouped:
                raise ValueError(f"entry {key!r} names no layer listed in __layers__")
            grouped[parts[1]][parts[2]] = data[key]
        elif key.startswith("param::"):
            params[key[len("param::"):]] = data[key]
    names = [str(n) for n in data["__scale_names__"].tolist()]
    values = [float(v) for v in data["__scale_values__"].tolist()]
    if len(names) != len(values):
        raise ValueError(f"{len(names)} scale names but {len(values)} scale values")
    layers = {name: _layer(name, arrays) for name, arrays in grouped.items()}
    return IntModel(cfg=cfg, layers=layers, params=params,
                    scales={names[i]: values[i] for i in range(len(names))})


def _layer(name: str, arrays: dict[str, np.ndarray]) -> Layer:
    missing = [key for key in _LAYER_ARRAYS if key not in arrays]
    if missing:
        raise ValueError(f"layer {name}: missing {', '.join(missing)}")
    for key in ("weight", "bias", "multiplier", "shift"):
        if not np.issubdtype(arrays[key].dtype, np.integer):
            raise ValueError(f"layer {name}: {key} is {arrays[key].dtype}, not integer")
    weight = arrays["weight"]
    if weight.ndim != 2 or any(arrays[key].shape != (weight.shape[0],)
                               for key in ("bias", "multiplier", "shift")):
        raise ValueError(f"layer {name}: weight {weight.shape} with bias/multiplier/shift of "
                         f"shapes {[arrays[key].shape for key in ('bias', 'multiplier', 'shift')]}")
    meta = arrays["meta"].tolist()
    if len(meta) != 4:
        raise ValueError(f"layer {name}: meta holds {len(meta)} values, expected 4 "
                         f"(weight bits, in scale, out scale, relu)")
    _bits, in_scale, out_scale, relu = meta
    return Layer(name=name, weight=weight, bias=arrays["bias"], multiplier=arrays["multiplier"],
                 shift=arrays["shift"], relu=bool(relu), in_scale=in_scale, out_scale=out_scale)
