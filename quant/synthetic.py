"""Seeded random integer layers, for hardware-scale checks where no trained model of that size
exists here. Anything built from these is labelled as random weights, never as a model."""

from __future__ import annotations

import dataclasses

import numpy as np

from vitfpga.ir import IntLinear, requant_params
from vitfpga.quant.codecs import nm_prune
from vitfpga.quant.model import ViTConfig, linear_shapes
from vitfpga.quant.structure import Structure, layer_rows, layer_type
from vitfpga.runtime.codecs import CodebookCodec, NMCodec, codec_for, narrow_range

__all__ = ["random_layer", "random_rows", "shape_weights", "structure_layers"]


def shape_weights(weight: np.ndarray, codec: str, bits: int, rng: np.random.Generator
                  ) -> np.ndarray:
    """Random weights made exactly encodable by `codec`: N:M keeps the N largest of every M,
    a codebook of K bits maps them onto 2^K values of the range (0 among them)."""
    c = codec_for(codec, bits)
    if isinstance(c, NMCodec):
        return nm_prune(weight, c.n, c.m)
    if isinstance(c, CodebookCodec):
        lo, hi = narrow_range(bits)
        others = np.array([v for v in range(lo, hi + 1) if v != 0])
        size = min((1 << c.index_bits) - 1, others.size)
        table = np.sort(np.append(rng.choice(others, size=size, replace=False), 0))
        return table[np.abs(weight[..., None] - table).argmin(axis=-1)]
    return weight


def random_layer(k: int, n: int, bits: int = 4, relu: bool = False, seed: int = 0,
                 name: str = "blocks.0.mlp.fc1", codec: str = "dense") -> IntLinear:
    """A layer in the integer contract with realistic scales (outputs spread over int8), its
    weights shaped for `codec` (see `shape_weights`) and stored in it."""
    rng = np.random.default_rng(seed)
    hi = 2 ** (bits - 1) - 1
    weight = shape_weights(rng.integers(-hi, hi + 1, size=(n, k), dtype=np.int64), codec, bits,
                           rng)
    bias = rng.integers(-(2**12), 2**12, size=n, dtype=np.int64)
    in_scale, out_scale = 0.05, 0.08
    w_scale = rng.uniform(0.01, 0.05, size=n) / hi * 4
    mult, shift = requant_params(in_scale * w_scale / out_scale)
    return IntLinear(name=name, weight=weight, bias=bias, multiplier=mult, shift=shift,
                     weight_bits=bits, in_scale=in_scale, w_scale=w_scale, out_scale=out_scale,
                     relu=relu, codec=codec)


def random_rows(rows: int, k: int, seed: int = 1) -> np.ndarray:
    """Full-range int8 input rows."""
    return np.random.default_rng(seed).integers(-128, 128, size=(rows, k), dtype=np.int64)


def structure_layers(structure: Structure, cfg: ViTConfig, seed: int = 0, codec: str = "dense"
                     ) -> tuple[dict[str, IntLinear], dict[str, int]]:
    """(layers, rows per image) of a model's shapes in a given structure, with seeded random
    weights: dense slots as one layer, factored slots as `.u`, `.v` (a shared decoder the same
    array in every block) and `.s`, all shaped for and stored as `codec`."""
    layers: dict[str, IntLinear] = {}
    decoders: dict[str, np.ndarray] = {}
    for i, (slot, k, n, _) in enumerate(linear_shapes(cfg)):
        spec = structure[slot]
        if not spec.factored:
            layers[slot] = random_layer(k, n, bits=spec.bits, seed=seed + i, name=slot,
                                         codec=codec)
            continue
        layers[f"{slot}.u"] = random_layer(k, spec.rank, bits=spec.bits, seed=seed + i,
                                           name=f"{slot}.u", codec=codec)
        v = random_layer(spec.rank, n, bits=spec.decoder_bits, seed=seed + 1000 + i,
                         name=f"{slot}.v", codec=codec)
        if spec.shared:
            v = dataclasses.replace(v, weight=decoders.setdefault(layer_type(slot) or slot,
                                                                  v.weight))
        layers[f"{slot}.v"] = v
        if spec.sparse:
            layers[f"{slot}.s"] = random_layer(k, n, bits=spec.bits, seed=seed + 2000 + i,
                                               name=f"{slot}.s", codec=codec)
    rows = layer_rows(cfg, list(layers))
    layers = {name: dataclasses.replace(layer, rows=rows[name]) for name, layer in layers.items()}
    return layers, rows
