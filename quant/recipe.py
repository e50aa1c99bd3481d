"""The compression recipe: what `quant.compress` does to a float teacher, parsed and validated
once. The run config's `[compress]` table is this recipe (`from_table`, `to_table`); the app
layer only reads TOML, type-checks its values against `TABLE_KEYS` and hands them over here.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vitfpga.errors import BadInput
from vitfpga.quant.codecs import SUPPORTED_BITS
from vitfpga.quant.structure import LAYER_TYPES
from vitfpga.runtime.codecs import MAX_CODEBOOK_BITS

__all__ = ["TABLE_KEYS", "CompressionRecipe", "LowRank", "Prune", "uniform_ranks"]


class Prune(StrEnum):
    """What pruning removes from the block layers during QAT."""

    NONE = "none"
    MAGNITUDE = "magnitude"
    NM = "nm"
    HEADS = "heads"
    NEURONS = "neurons"


class LowRank(StrEnum):
    """How block layers are factorised as (x·U)·V: plain SVD or activation-aware."""

    NONE = "none"
    SVD = "svd"
    AWARE = "aware"


# The [compress] table's keys and their TOML types (lists of "A=B" strings are parsed here).
TABLE_KEYS: dict[str, Any] = {
    "weight_bits": int, "layer_bits": tuple[str, ...], "prune": str, "prune_sparsity": float,
    "prune_nm": str, "lowrank": str, "lowrank_keep": float, "lowrank_sparse": float,
    "lowrank_compensate": int, "shared_rank": int, "shared_code_bits": int,
    "shared_type_ranks": tuple[str, ...], "kd_weight": float, "kd_temperature": float,
    "qat_epochs": int, "qat_lr": float, "codebook_bits": int,
}

Ranks = tuple[tuple[str, int], ...]  # (layer type, decoder rank) for qkv, proj, fc1, fc2


def uniform_ranks(rank: int) -> Ranks:
    """The same shared-decoder rank for every layer type (0: not shared)."""
    return tuple((kind, rank) for kind in LAYER_TYPES)


@dataclass(frozen=True)
class CompressionRecipe:
    weight_bits: int = 4
    # Mixed precision: (glob, bits) per slot pattern, the first match wins, e.g. ("head", 8).
    layer_bits: tuple[tuple[str, int], ...] = ()
    prune: Prune = Prune.NONE
    prune_sparsity: float = 0.5  # fraction removed (weights, heads or neurons); nm: prune_nm
    prune_nm: tuple[int, int] = (2, 4)  # (N, M): N of every M consecutive weights kept
    lowrank: LowRank = LowRank.NONE
    lowrank_keep: float = 0.5  # fraction of the block layers' parameters the factors keep
    lowrank_sparse: float = 0.0  # sum of two tensors: density of a sparse term beside U·V
    lowrank_compensate: int = 0  # gradient steps of layer-wise error compensation per layer
    shared_ranks: Ranks = tuple((kind, 0) for kind in LAYER_TYPES)  # DeepCompress-ViT, per type
    shared_code_bits: int = 0  # bits of the per-block codes (0: weight_bits)
    # Weight clustering: each block layer's integer weights onto 2^K values (k-means), stored as
    # K-bit codebook indices (0: off).
    codebook_bits: int = 0
    kd_weight: float = 0.5
    kd_temperature: float = 2.0
    qat_epochs: int = 30
    qat_lr: float = 1e-3

    def __post_init__(self) -> None:
        # Enums from plain strings too, so a replace(prune="nm") is as good as the TOML path.
        object.__setattr__(self, "prune", _member(Prune, self.prune, "prune"))
        object.__setattr__(self, "lowrank", _member(LowRank, self.lowrank, "lowrank"))
        self._validate_training()
        self._validate_form()

    @property
    def ranks(self) -> dict[str, int]:
        """Decoder rank per layer type (0: that type is not shared)."""
        return dict(self.shared_ranks)

    @property
    def shared(self) -> bool:
        return any(r for _, r in self.shared_ranks)

    def _validate_training(self) -> None:
        if self.qat_epochs < 0:
            raise BadInput("qat_epochs must be 0 (calibration only: post-training) or more")
        if not 0.0 <= self.kd_weight <= 1.0:
            raise BadInput("kd_weight must be between 0 and 1")
        if self.kd_temperature <= 0 or self.qat_lr <= 0:
            raise BadInput("kd_temperature and qat_lr must be positive")

    def _validate_form(self) -> None:
        bits = {self.weight_bits, *(b for _, b in self.layer_bits)}
        if self.shared_code_bits:
            bits.add(self.shared_code_bits)
        if bad := sorted(bits - set(SUPPORTED_BITS)):
            raise BadInput(f"weight bit-width {bad[0]} is not supported; use one of "
                           f"{', '.join(map(str, SUPPORTED_BITS))}")
        if not 0.0 <= self.prune_sparsity < 1.0:
            raise BadInput(f"prune_sparsity must be in [0, 1), got {self.prune_sparsity}")
        n, m = self.prune_nm
        if not 1 <= n < m:
            raise BadInput(f"prune_nm needs 1 <= N < M, got {n}:{m}")
        if not 0.0 < self.lowrank_keep < 1.0:
            raise BadInput(f"lowrank_keep must be in (0, 1), got {self.lowrank_keep}")
        if not 0.0 <= self.lowrank_sparse < 1.0:
            raise BadInput(f"lowrank_sparse must be in [0, 1), got {self.lowrank_sparse}")
        if not 0 <= self.codebook_bits <= MAX_CODEBOOK_BITS:
            raise BadInput(f"codebook_bits must be 0 (off) or 1..{MAX_CODEBOOK_BITS}, got "
                           f"{self.codebook_bits}")
        if self.lowrank_compensate < 0 or any(r < 0 for _, r in self.shared_ranks):
            raise BadInput("lowrank_compensate and shared_rank must be 0 or more")
        if sorted(k for k, _ in self.shared_ranks) != sorted(LAYER_TYPES):
            raise BadInput(f"shared ranks must name each layer type once "
                           f"({', '.join(LAYER_TYPES)})")
        if self.shared and self.lowrank != LowRank.NONE:
            raise BadInput("shared_rank and lowrank both factorise the block layers; pick one")
        if self.prune in (Prune.HEADS, Prune.NEURONS) and (self.shared
                                                          or self.lowrank != LowRank.NONE):
            raise BadInput(f"prune = '{self.prune}' removes rows of dense layers; it cannot "
                           f"combine with low-rank or shared-decoder layers")

    @classmethod
    def from_table(cls, values: Mapping[str, Any]) -> CompressionRecipe:
        """From the [compress] table's keys (types already checked against TABLE_KEYS): the
        "GLOB=BITS", "N:M" and "TYPE=RANK" strings parsed here, once."""
        v = dict(values)
        kwargs = {k: v.pop(k) for k in list(v) if k in _SAME_NAME}
        if "layer_bits" in v:
            kwargs["layer_bits"] = _layer_bits(v.pop("layer_bits"))
        if "prune_nm" in v:
            kwargs["prune_nm"] = _nm(v.pop("prune_nm"))
        kwargs["shared_ranks"] = _shared_ranks(v.pop("shared_rank", 0),
                                               v.pop("shared_type_ranks", ()))
        if v:
            raise BadInput(f"unknown key '{next(iter(v))}' in [compress]; its keys: "
                           f"{', '.join(TABLE_KEYS)}")
        return cls(**kwargs)

    def to_table(self) -> dict[str, Any]:
        """The [compress] table that gives this recipe back (report.json's "config")."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name in _SAME_NAME}
        ranks = self.ranks
        common = Counter(ranks.values()).most_common(1)[0][0]  # the rest as type overrides
        table = {**out, "layer_bits": [f"{g}={b}" for g, b in self.layer_bits],
                 "prune": str(self.prune), "prune_nm": "{}:{}".format(*self.prune_nm),
                 "lowrank": str(self.lowrank), "shared_rank": common,
                 "shared_type_ranks": [f"{t}={r}" for t, r in ranks.items() if r != common]}
        return {k: table[k] for k in TABLE_KEYS}

    @property
    def label(self) -> str:
        """Short, for a search candidate: "int3, aware low-rank keeping 25%"."""
        parts = [f"int{self.weight_bits}"]
        if self.prune != Prune.NONE:
            parts.append(f"{self._nm_text} sparse" if self.prune == Prune.NM
                         else f"{self.prune} {self.prune_sparsity:.0%} pruned")
        if self.lowrank != LowRank.NONE:
            parts.append(f"{self.lowrank} low-rank keeping {self.lowrank_keep:.0%}")
        if self.shared:
            parts.append(f"shared decoders rank {self._ranks_text}")
        if self.codebook_bits:
            parts.append(f"{1 << self.codebook_bits}-value codebook")
        return ", ".join(parts)

    def describe(self) -> str:
        """Long, for the compress step's banner: every choice the recipe makes."""
        parts = [f"int{self.weight_bits} per-channel weights, int8 activations"]
        if self.layer_bits:
            parts.append("mixed precision " + ", ".join(f"{g}={b}" for g, b in self.layer_bits))
        if self.prune != Prune.NONE:
            parts.append(f"{self._nm_text} N:M pruning" if self.prune == Prune.NM else
                         f"{self.prune} pruning to {self.prune_sparsity:.0%}")
        if self.lowrank != LowRank.NONE:
            parts.append(f"{self.lowrank} low-rank keeping {self.lowrank_keep:.0%} of block "
                         f"weights" + (f" + {self.lowrank_sparse:.0%} sparse"
                                       if self.lowrank_sparse else ""))
        if self.shared:
            parts.append("shared decoders of rank "
                         + ", ".join(f"{t} {r}" for t, r in self.shared_ranks if r))
        if self.codebook_bits:
            parts.append(f"block weights clustered onto {1 << self.codebook_bits} values "
                         f"(codebook:{self.codebook_bits})")
        return ", ".join(parts)

    @property
    def _nm_text(self) -> str:
        return "{}:{}".format(*self.prune_nm)

    @property
    def _ranks_text(self) -> str:
        ranks = set(self.ranks.values())
        if len(ranks) == 1:
            return str(ranks.pop())
        return ", ".join(f"{t} {r}" for t, r in self.shared_ranks if r)


_SAME_NAME = ("weight_bits", "prune", "prune_sparsity", "lowrank", "lowrank_keep",
              "lowrank_sparse", "lowrank_compensate", "shared_code_bits", "kd_weight",
              "kd_temperature", "qat_epochs", "qat_lr", "codebook_bits")


def _member(enum: type[StrEnum], value: str, key: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise BadInput(f"{key} must be one of {', '.join(e.value for e in enum)}, "
                       f"got '{value}'") from None


def _layer_bits(entries: Iterable[str]) -> tuple[tuple[str, int], ...]:
    out: dict[str, int] = {}
    for entry in entries:
        glob, sep, bits = entry.partition("=")
        if not (sep and glob.strip() and bits.strip().isdigit()):
            raise BadInput(f"layer_bits entry '{entry}' must look like 'head=8' or "
                           f"'blocks.*.mlp.fc1=3'")
        out[glob.strip()] = int(bits)
    return tuple(out.items())


def _nm(text: str) -> tuple[int, int]:
    n, sep, m = text.partition(":")
    if not (sep and n.isdigit() and m.isdigit()):
        raise BadInput(f"prune_nm must look like '2:4', got '{text}'")
    return int(n), int(m)


def _shared_ranks(rank: int, entries: Iterable[str]) -> Ranks:
    """`shared_type_ranks` entries "TYPE=RANK" over `shared_rank` for every type."""
    ranks = dict(uniform_ranks(rank))
    for entry in entries:
        kind, sep, value = entry.partition("=")
        if not (sep and kind.strip() in ranks and value.strip().isdigit()):
            raise BadInput(f"shared_type_ranks entry '{entry}' must look like 'fc1=16' "
                           f"(types: {', '.join(LAYER_TYPES)})")
        ranks[kind.strip()] = int(value)
    return tuple(ranks.items())
