"""The integer model: ONE contract for export, golden, planner, emitters and the board driver.

`ModelSpec` is the geometry, `IntLinear` one linear layer in the engine's arithmetic, `IntModel`
the whole integer ViT (spec, layers in execution order, every other parameter as an integer
array, the calibrated real scales). `IntModel.save` writes one `.npz` (no pickles; a run keeps it
as `model.npz`) and `load_model` reads it back and validates it, so a damaged or hand-made file
is refused with the layer and the value named instead of failing deep inside the planner.

Kept free of vitfpga's own modules and torch, Python 3.8 syntax, relative imports only: the
generated PYNQ driver copies this package verbatim to a board's ARM core (numpy only).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np

from .codecs import SUPPORTED_BITS, UnknownCodec, choose_codecs, codec_for, narrow_range
from .intmath import int_matmul, requantize

__all__ = ["ACC_LIMIT", "FORMAT", "IntLinear", "IntModel", "ModelSpec", "encode_layers",
           "linear_golden",
           "load_model", "requant_params", "slot_layers", "weight_owners", "write_npz"]

ACC_LIMIT = 2**31  # the engine's accumulators are int32
FORMAT = "vitfpga.int_model/1"  # what `save` writes into `__meta__`; `load_model` checks it
_ARRAYS = ("weight", "bias", "multiplier", "shift", "w_scale")
_INT_ARRAYS = ("weight", "bias", "multiplier", "shift")
# What the forward pass computes. GELU of either kind is a 256-entry ROM, so both run; average
# pooling runs in the integer forward pass (and so the host-offload design), while the
# whole-model hardware refuses it by name (hls.plan.program).
_POOLS, _RUN_POOLS = ("token", "avg"), ("token", "avg")
_GELUS, _RUN_GELUS = ("erf", "tanh"), ("erf", "tanh")


@dataclass(frozen=True)
class ModelSpec:
    """A ViT's geometry and the choices its integer forward pass depends on."""

    image_size: int
    patch_size: int
    in_chans: int
    dim: int
    depth: int
    heads: int
    mlp_hidden: int
    num_classes: int
    pool: str = "token"  # "token": the class token's output feeds the head; "avg": mean of tokens
    ln_eps: float = 1e-5
    gelu: str = "erf"  # "erf" (exact) or "tanh" (the approximation)

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def tokens(self) -> int:
        return self.patches + (1 if self.pool == "token" else 0)

    @property
    def patch_dim(self) -> int:
        return self.patch_size**2 * self.in_chans

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> ModelSpec:
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"spec: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**{k: values[k] for k in names if k in values})
        except TypeError as exc:  # a required field is missing
            raise ValueError(f"spec: {exc}") from None

    def validate(self) -> None:
        """ValueError naming the field for a value that is malformed, or that the integer
        forward pass and the hardware do not run yet."""
        for name in ("image_size", "patch_size", "in_chans", "dim", "depth", "heads",
                     "mlp_hidden", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"spec {name} {value!r}: expected a positive integer")
        if self.image_size % self.patch_size:
            raise ValueError(f"spec image_size {self.image_size} is not a multiple of "
                             f"patch_size {self.patch_size}")
        if self.dim % self.heads:
            raise ValueError(f"spec dim {self.dim} is not a multiple of heads {self.heads}")
        if not (isinstance(self.ln_eps, (float, int)) and math.isfinite(self.ln_eps)
                and self.ln_eps > 0):
            raise ValueError(f"spec ln_eps {self.ln_eps!r}: expected a positive number")
        for name, known, runs in (("pool", _POOLS, _RUN_POOLS), ("gelu", _GELUS, _RUN_GELUS)):
            value = getattr(self, name)
            if value not in known:
                raise ValueError(f"spec {name} {value!r}: expected one of {', '.join(known)}")
            if value not in runs:
                raise ValueError(f"spec {name} {value!r}: the integer forward pass and the "
                                 f"hardware run {name}={' or '.join(runs)} only (so far)")

    def slots(self) -> list[tuple[str, int]]:
        """(slot, rows per image) of every linear layer, in execution order: the patch embedding
        sees the patches, the blocks every token, the head one row."""
        out = [("patch_embed", self.patches)]
        for b in range(self.depth):
            out += [(f"blocks.{b}.{part}", self.tokens)
                    for part in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")]
        return [*out, ("head", 1)]


@dataclass(frozen=True, eq=False)
class IntLinear:
    """One linear layer in the integer contract: `acc = bias + x @ weight.T` in int32, then
    `y = clamp((acc*M + 2^(S-1)) >> S, -128, 127)` per output channel, ReLU a clamp at 0.
    The real scales are for information (reports, the image quantiser); the arithmetic never
    reads them. Integer arrays are held as int64, `w_scale` as float64."""

    name: str  # module path in the model, e.g. "blocks.0.mlp.fc1" or "blocks.0.mlp.fc1.u"
    weight: np.ndarray  # (N, K), narrow range of `weight_bits`
    bias: np.ndarray  # (N,), fits int32, at scale in_scale * w_scale[n]
    multiplier: np.ndarray  # (N,) in [2^30, 2^31)
    shift: np.ndarray  # (N,) in [1, 62]
    relu: bool
    in_scale: float
    out_scale: float
    w_scale: np.ndarray  # (N,)
    weight_bits: int
    codec: str = "dense"  # how the engine's weight memory stores it (runtime.codecs)
    rows: int = 1  # rows per image: patches, tokens, or 1 (head); .u/.v/.s: their slot's

    def __post_init__(self) -> None:
        for key in _INT_ARRAYS:
            object.__setattr__(self, key, np.asarray(getattr(self, key), dtype=np.int64))
        object.__setattr__(self, "w_scale", np.asarray(self.w_scale, dtype=np.float64))
        object.__setattr__(self, "relu", bool(self.relu))
        for key in ("in_scale", "out_scale"):
            object.__setattr__(self, key, float(getattr(self, key)))
        object.__setattr__(self, "weight_bits", int(self.weight_bits))
        object.__setattr__(self, "rows", int(self.rows))

    @property
    def k(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n(self) -> int:
        return int(self.weight.shape[0])

    def acc_bound(self, x_max: int = 128) -> int:
        """Largest |acc| any int8 input can produce: the planner's overflow proof uses it."""
        per_row = np.abs(self.weight).sum(axis=1) * x_max + np.abs(self.bias)
        return int(per_row.max())

    def validate(self) -> None:
        """ValueError naming this layer and the offending value."""
        where = f"layer {self.name}"
        n = self.weight.shape[0] if self.weight.ndim == 2 else -1
        if self.weight.ndim != 2 or 0 in self.weight.shape:
            raise ValueError(f"{where}: weight has shape {self.weight.shape}, expected (N, K) "
                             f"with N, K >= 1")
        for key in ("bias", "multiplier", "shift", "w_scale"):
            if getattr(self, key).shape != (n,):
                raise ValueError(f"{where}: {key} has shape {getattr(self, key).shape}, "
                                 f"expected ({n},) for {n} output channels")
        if self.weight_bits not in SUPPORTED_BITS:
            raise ValueError(f"{where}: weight_bits {self.weight_bits} is not supported (one of "
                             f"{', '.join(map(str, SUPPORTED_BITS))})")
        lo, hi = narrow_range(self.weight_bits)
        _in_range(where, "weight", self.weight, lo, hi,
                  f"int{self.weight_bits}'s narrow range [{lo}, {hi}]")
        _in_range(where, "bias", self.bias, -ACC_LIMIT, ACC_LIMIT - 1, "int32")
        _in_range(where, "multiplier", self.multiplier, 2**30, 2**31 - 1, "[2^30, 2^31)")
        _in_range(where, "shift", self.shift, 1, 62, "[1, 62]")
        bound = self.acc_bound()
        if bound >= ACC_LIMIT:
            raise ValueError(f"{where}: worst-case accumulator {bound} overflows int32")
        try:
            codec_for(self.codec, self.weight_bits).check(self.weight)
        except UnknownCodec as e:
            raise ValueError(f"{where}: codec {self.codec!r}: {e}") from None
        if self.rows < 1:
            raise ValueError(f"{where}: rows {self.rows} is below 1")
        for key in ("in_scale", "out_scale"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                raise ValueError(f"{where}: {key} {getattr(self, key)!r} is not positive")


def _in_range(where: str, key: str, values: np.ndarray, lo: int, hi: int, what: str) -> None:
    bad = (values < lo) | (values > hi)
    if bad.any():
        raise ValueError(f"{where}: {key} {int(values[bad].flat[0])} is outside {what}")


@dataclass(eq=False)
class IntModel:
    """The integer ViT: its spec, the linear layers by module path in execution order, every
    other parameter as an integer array keyed by its path (`blocks.0.norm1.gamma`,
    `blocks.0.add1`, `hop.blocks.0.mlp.fc2.v`, ...; empty for a layers-only model, which runs
    single layers), and the calibrated real scales (reports only: the forward pass never reads
    them)."""

    spec: ModelSpec
    layers: dict[str, IntLinear]
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

    def rows(self) -> dict[str, int]:
        """Rows per image of every layer (what the planner schedules)."""
        return {name: layer.rows for name, layer in self.layers.items()}

    def validate(self) -> None:
        """ValueError naming the field, layer or parameter and the value that is wrong."""
        self.spec.validate()
        for name, layer in self.layers.items():
            if layer.name != name:
                raise ValueError(f"layer {name}: holds a layer named {layer.name}")
            layer.validate()
        _check_geometry(self.spec, self.layers)
        for key, array in self.params.items():
            if not np.issubdtype(np.asarray(array).dtype, np.integer):
                raise ValueError(f"param {key}: {np.asarray(array).dtype}, not integer")

    def save(self, path: str) -> None:
        """One `.npz`: the arrays, and `__meta__` (JSON) with the spec, the layers' scalars in
        execution order and the scales. Deterministic: equal models give equal bytes."""
        meta = {"format": FORMAT, "spec": self.spec.to_dict(),
                "layers": [_layer_meta(layer) for layer in self.layers.values()],
                "scales": {k: float(v) for k, v in self.scales.items()}}
        arrays = {"__meta__": np.array(json.dumps(meta))}
        for name, layer in self.layers.items():
            for key in _ARRAYS:
                arrays[f"layer::{name}::{key}"] = getattr(layer, key)
            w = layer.weight
            if w.size and w.min() >= -128 and w.max() <= 127:  # narrow-range weights: an eighth
                arrays[f"layer::{name}::weight"] = w.astype(np.int8)
        for key, array in self.params.items():
            arrays[f"param::{key}"] = np.asarray(array)
        write_npz(path, arrays)


def _layer_meta(layer: IntLinear) -> dict[str, object]:
    return {"name": layer.name, "weight_bits": layer.weight_bits, "in_scale": layer.in_scale,
            "out_scale": layer.out_scale, "relu": layer.relu, "codec": layer.codec,
            "rows": layer.rows}


def write_npz(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """`np.savez` with sorted members and a fixed timestamp, deflated: equal arrays give equal
    bytes (the model file, the driver package's test images)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def _slot_of(name: str, spec: ModelSpec, expected: Mapping[str, int]) -> str:
    if name in expected:
        return name
    slot, _, part = name.rpartition(".")
    if slot not in expected or part not in ("u", "v", "s"):
        raise ValueError(f"layer {name}: not a linear layer of the spec (depth {spec.depth})")
    return slot


def _check_geometry(spec: ModelSpec, layers: Mapping[str, IntLinear]) -> None:
    """Every layer belongs to a slot of the spec with that slot's rows; every slot is there;
    the widths that structured pruning leaves alone agree with the spec."""
    expected = dict(spec.slots())
    for name, layer in layers.items():
        slot = _slot_of(name, spec, expected)
        if layer.rows != expected[slot]:
            raise ValueError(f"layer {name}: rows {layer.rows}, but the spec gives {slot} "
                             f"{expected[slot]} rows per image")
    dim = spec.dim
    widths = {"patch_embed": (spec.patch_dim, dim), "head": (dim, spec.num_classes)}
    for b in range(spec.depth):
        widths.update({f"blocks.{b}.attn.qkv": (dim, None), f"blocks.{b}.attn.proj": (None, dim),
                       f"blocks.{b}.mlp.fc1": (dim, None), f"blocks.{b}.mlp.fc2": (None, dim)})
    for slot, (k, n) in widths.items():
        try:
            names = slot_layers(layers, slot)
        except KeyError as exc:
            raise ValueError(str(exc).strip("'\"")) from None
        first, last = layers[names[0]], layers[names[min(1, len(names) - 1)]]
        if k is not None and first.k != k:
            raise ValueError(f"layer {first.name}: K {first.k}, but the spec gives {k}")
        if n is not None and last.n != n:
            raise ValueError(f"layer {last.name}: N {last.n}, but the spec gives {n}")


def slot_layers(layers: Mapping[str, object], slot: str) -> list[str]:
    """The integer layers of a slot: `[slot]`, `[slot.u, slot.v]` or `[.u, .v, .s]`."""
    if slot in layers:
        return [slot]
    names = [f"{slot}.{part}" for part in "uvs" if f"{slot}.{part}" in layers]
    if names[:2] != [f"{slot}.u", f"{slot}.v"]:
        raise KeyError(f"slot {slot}: no dense layer and no u/v pair among the integer layers")
    return names


def linear_golden(x: object, layer: IntLinear) -> np.ndarray:
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


def requant_params(real: object) -> tuple[np.ndarray, np.ndarray]:
    """Split positive real multipliers into (M, S) with M in [2^30, 2^31) and S in [1, 62].

    `real ≈ M / 2^S`; M keeps 31 significant bits, so the rounding error is below 2^-31 relative.
    """
    real = np.asarray(real, dtype=np.float64)
    if not np.all(np.isfinite(real)) or np.any(real <= 0):
        raise ValueError("requantisation multipliers must be finite and positive")
    mant, exp = np.frexp(real)  # real = mant * 2^exp, mant in [0.5, 1)
    m = np.round(mant * 2.0**31).astype(np.int64)
    carry = m == 2**31  # mantissa rounded up to 1.0
    m = np.where(carry, 2**30, m)
    exp = np.where(carry, exp + 1, exp)
    s = 31 - exp.astype(np.int64)
    if np.any(s < 1) or np.any(s > 62):
        bad = real[(s < 1) | (s > 62)][0]
        raise ValueError(f"requantisation multiplier {bad:.3g} is outside [2^-31, 2^30]")
    return m, s


def encode_layers(layers: Mapping[str, IntLinear],
                  codecs: Mapping[str, str] | None = None) -> dict[str, IntLinear]:
    """`layers` with each weight array's codec set: `codecs` where given, else the cheapest
    exact hardware codec of each (`codecs.choose_codecs`, one N:M pattern per model)."""
    if codecs is None:
        codecs = choose_codecs({n: (layer.weight, layer.weight_bits)
                                for n, layer in layers.items()})
    return {n: dataclasses.replace(layer, codec=codecs[n]) for n, layer in layers.items()}


def weight_owners(layers: Mapping[str, IntLinear]) -> dict[str, str]:
    """Each layer's weight owner: the first layer with an identical integer weight array stored
    the same way (a decoder shared by every block), else itself. What the engine stores and the
    size counts once. The codec and bits are part of the key: the same values in another
    encoding are another stream."""
    first: dict[tuple[object, ...], str] = {}
    return {name: first.setdefault(
        (layer.codec, layer.weight_bits, layer.weight.shape,
         np.ascontiguousarray(layer.weight, dtype=np.int64).tobytes()), name)
        for name, layer in layers.items()}


# ---- reading -------------------------------------------------------------------------------

def load_model(path: str) -> IntModel:
    """Read and validate what `IntModel.save` writes (no pickles). A missing file raises
    FileNotFoundError; anything else that is not a valid model raises ValueError whose text
    starts with the path and names the layer or field and the value."""
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not an integer model file (what IntModel.save writes): "
                         f"{exc}") from None
    if not hasattr(data, "files"):  # a plain .npy array
        raise ValueError(f"{path}: not an integer model file (what IntModel.save writes): "
                         f"it holds one array, not an archive")
    try:
        with data:
            model = _parse(data)
    except (KeyError, ValueError, TypeError, IndexError, OSError, EOFError, zipfile.BadZipFile,
            zlib.error) as exc:
        raise ValueError(f"{path}: not a valid integer model file (what IntModel.save "
                         f"writes): {exc}") from None
    try:
        model.validate()
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return model


def _parse(data: np.lib.npyio.NpzFile) -> IntModel:
    if "__meta__" not in data.files:
        raise ValueError("missing __meta__")
    meta = json.loads(str(data["__meta__"].item()))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"format {found!r}, expected {FORMAT!r}")
    spec = ModelSpec.from_dict(meta["spec"])
    names = [str(entry["name"]) for entry in meta["layers"]]
    for key in data.files:
        if key.startswith("layer::") and key.split("::")[1] not in names:
            raise ValueError(f"entry {key!r} names no layer listed in __meta__")
    layers = {}
    for entry in meta["layers"]:
        layers[str(entry["name"])] = _layer(entry, data)
    params = {key[len("param::"):]: data[key] for key in data.files if key.startswith("param::")}
    scales = {str(k): float(v) for k, v in meta["scales"].items()}
    return IntModel(spec=spec, layers=layers, params=params, scales=scales)


def _layer(entry: Mapping[str, object], data: np.lib.npyio.NpzFile) -> IntLinear:
    name = str(entry["name"])
    missing = [key for key in _ARRAYS if f"layer::{name}::{key}" not in data.files]
    if missing:
        raise ValueError(f"layer {name}: missing {', '.join(missing)}")
    arrays = {key: data[f"layer::{name}::{key}"] for key in _ARRAYS}
    for key in _INT_ARRAYS:
        if not np.issubdtype(arrays[key].dtype, np.integer):
            raise ValueError(f"layer {name}: {key} is {arrays[key].dtype}, not integer")
    return IntLinear(name=name, weight=arrays["weight"], bias=arrays["bias"],
                     multiplier=arrays["multiplier"], shift=arrays["shift"],
                     relu=bool(entry["relu"]), in_scale=float(entry["in_scale"]),
                     out_scale=float(entry["out_scale"]), w_scale=arrays["w_scale"],
                     weight_bits=int(entry["weight_bits"]), codec=str(entry["codec"]),
                     rows=int(entry["rows"]))
