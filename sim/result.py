"""One verification row, as it appears in report.json (design.md §9)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["SimResult", "compare"]


@dataclass(frozen=True)
class SimResult:
    target: str  # "csim" | "verilator" | "icarus"
    layer: str
    compared: int
    mismatches: int
    cycles: int | None
    ideal_cycles: int | None

    @property
    def ok(self) -> bool:
        return self.compared > 0 and self.mismatches == 0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def compare(got: np.ndarray, expected: np.ndarray) -> tuple[int, int]:
    """(values compared, mismatches); a shape mismatch counts every expected value as wrong."""
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return int(expected.size), int(expected.size)
    return int(expected.size), int(np.count_nonzero(got != expected))
