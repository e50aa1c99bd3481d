"""Emit the Vitis HLS C++ project of one linear layer's engine (docs/engine.md).

`out_dir/hls/` gets the rendered top, config, weight tables, testbench and Vitis TCL, the
hand-written kernel headers under `include/vitfpga/`, and a small self-checking test vector in
`tb_data/` so that `vitis_hls -f run_hls.tcl` runs csim and cosim with no further input.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from vitfpga.errors import BadInput
from vitfpga.hls.emit import copy_static, hexword, render
from vitfpga.hls.layout import channel_words, weight_words
from vitfpga.hls.names import identifier
from vitfpga.hls.plan import EnginePlan, check_plan_matches
from vitfpga.ir import IntLinear
from vitfpga.quant.golden import linear_int

__all__ = ["TB_ROWS_MAX", "emit_hls", "read_matrix", "write_matrix"]

# Rows in the packaged test vector: enough to cross row boundaries and check TLAST, few enough
# that RTL co-simulation of a large layer stays short.
TB_ROWS_MAX = 4

# ap_int's default width limit; wider words need AP_INT_MAX_W raised before ap_int.h.
_AP_INT_DEFAULT_MAX_W = 1024
_PART = re.compile(r"^[A-Za-z0-9_.-]+$")

_RENDERED = (
    ("config.h.j2", "config.h"),
    ("weights.h.j2", "weights.h"),
    ("vitfpga_engine.cpp.j2", "vitfpga_engine.cpp"),
    ("tb_vitfpga_engine.cpp.j2", "tb_vitfpga_engine.cpp"),
    ("run_hls.tcl.j2", "run_hls.tcl"),
)


def write_matrix(path: Path, values: np.ndarray) -> None:
    """The testbench's matrix format: a `rows cols` header, then one row of integers a line."""
    values = np.asarray(values, dtype=np.int64)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {values.shape}")
    lines = [f"{values.shape[0]} {values.shape[1]}"]
    lines += [" ".join(str(int(v)) for v in row) for row in values]
    path.write_text("\n".join(lines) + "\n")


def read_matrix(path: Path) -> np.ndarray:
    """Inverse of `write_matrix`; raises ValueError when the header and the data disagree."""
    numbers = path.read_text().split()
    if len(numbers) < 2:
        raise ValueError(f"{path}: no `rows cols` header")
    rows, cols = int(numbers[0]), int(numbers[1])
    data = np.array([int(v) for v in numbers[2:]], dtype=np.int64)
    if data.size != rows * cols:
        raise ValueError(f"{path}: header says {rows}x{cols}, found {data.size} values")
    return data.reshape(rows, cols)


def _check(plan: EnginePlan, layer: IntLinear) -> None:
    check_plan_matches(plan, layer)
    if not _PART.match(plan.part):
        raise BadInput(f"{plan.ident}: part name {plan.part!r} is not a plain Xilinx part name")
    if plan.clock_mhz <= 0:
        raise BadInput(f"{plan.ident}: clock must be positive, got {plan.clock_mhz} MHz")


def _test_rows(rows: int, k: int) -> np.ndarray:
    """Full-range int8 inputs from the splitmix64 finaliser of each index.

    A fixed integer hash, not an RNG stream, so the emitted files stay byte-identical across
    numpy versions; uint64 arithmetic wraps, which the hash relies on.
    """
    z = np.arange(rows * k, dtype=np.uint64).reshape(rows, k) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z & np.uint64(0xFF)).astype(np.int64) - 128


def _context(plan: EnginePlan, layer: IntLinear) -> dict[str, object]:
    pe, simd, bits = plan.pe, plan.simd, plan.weight_bits
    word_bits = plan.word_bits
    widest = max(word_bits, simd * 8, pe * 32)
    # Round up to whole 1024-bit blocks, the granularity ap_int allocates its storage in.
    ap_int_max_w = None if widest <= _AP_INT_DEFAULT_MAX_W else -(-widest // 1024) * 1024
    return {
        "ident": identifier(plan.ident),
        "k": plan.k, "n": plan.n, "pe": pe, "simd": simd, "sf": plan.sf, "nf": plan.nf,
        "wbits": bits, "relu": "true" if layer.relu else "false",
        "word_bits": word_bits, "weight_depth": plan.weight_depth,
        "folds": plan.nf * plan.sf, "rows": plan.rows, "trip_max": plan.ideal_cycles(plan.rows),
        "bias_bits": pe * 32, "mult_bits": pe * 32, "shift_bits": pe * 8,
        "in_bits": simd * 8, "out_bits": pe * 8, "ap_int_max_w": ap_int_max_w,
        "weights": [hexword(w, word_bits) for w in weight_words(layer.weight, pe, simd, bits)],
        "bias": [hexword(w, pe * 32) for w in channel_words(layer.bias, pe, 32)],
        "mult": [hexword(w, pe * 32) for w in channel_words(layer.multiplier, pe, 32)],
        "shift": [hexword(w, pe * 8) for w in channel_words(layer.shift, pe, 8)],
        "part": plan.part,
        "period_ns": f"{1000.0 / plan.clock_mhz:.3f}",
    }


def emit_hls(plan: EnginePlan, layer: IntLinear, out_dir: Path) -> list[Path]:
    """Write `out_dir/hls/`; returns the written files in a fixed order.

    Identical inputs give byte-identical files. Nothing from the model reaches the files except
    numbers and the sanitised `plan.ident`.
    """
    _check(plan, layer)
    hls_dir = Path(out_dir) / "hls"
    hls_dir.mkdir(parents=True, exist_ok=True)
    context = _context(plan, layer)
    written = []
    for template, name in _RENDERED:
        path = hls_dir / name
        path.write_text(render(f"hls/{template}", **context))
        written.append(path)
    written += copy_static("hls/include", hls_dir / "include")

    tb_dir = hls_dir / "tb_data"
    tb_dir.mkdir(exist_ok=True)
    x = _test_rows(min(plan.rows, TB_ROWS_MAX) or 1, plan.k)
    for name, values in (("input.txt", x), ("expected.txt", linear_int(x, layer).numpy())):
        write_matrix(tb_dir / name, values)
        written.append(tb_dir / name)
    return written
