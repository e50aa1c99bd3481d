"""Emit the Vitis HLS C++ project of the engine that runs every layer of a model (docs/engine.md).

`out_dir/hls/` gets the rendered configuration, memories (the weight ROM part, per-channel
tables, program), top, testbench and Vitis TCL, the hand-written kernel headers under
`include/vitfpga/`, and self-checking test vectors in `tb_data/` (a few rows per layer, a jobs
file and, when the plan puts weights in the start-up-loaded RAM, `weights_ram.mem` with those
words) so that `vitis_hls -f run_hls.tcl` runs csim and cosim with no further input.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from vitfpga.errors import BadInput
from vitfpga.hls.emit.templating import copy_static, hexword, render, write_mem
from vitfpga.hls.plan.engine import ModelPlan, check_model_plan
from vitfpga.hls.plan.layout import CHANNEL_PAD, PROGRAM_FIELDS, ModelTables, model_tables
from vitfpga.ir import IntLinear
from vitfpga.runtime.codecs import CODEC_KINDS
from vitfpga.runtime.model import linear_golden

__all__ = ["HLS_IP_DIR", "HLS_IP_VLNV", "JOBS_FILE", "RAM_WORDS_FILE", "TB_ROWS_MAX", "emit_hls",
           "read_matrix", "write_matrix"]

# Rows per layer in the packaged test vectors: enough to cross row boundaries and check TLAST,
# few enough that RTL co-simulation of a large model stays short.
TB_ROWS_MAX = 4
JOBS_FILE = "jobs.txt"  # in tb_data/; the testbench's argument
# In tb_data/, beside the jobs file, where the testbench looks for it: the weight words past the
# plan's rom_depth, which the testbench loads like the host does (same name and format as the
# Verilog project's weights_ram.mem). Written only when the plan has such words.
RAM_WORDS_FILE = "weights_ram.mem"

# Vitis HLS project and solution that run_hls.tcl creates inside hls/ (it changes directory to
# its own folder first, so the export lands in the same place wherever vitis_hls is started).
HLS_PROJECT = "vitfpga_engine"
HLS_SOLUTION = "solution1"
# The exported IP's identity and folder: vivado/build.tcl instantiates it by this VLNV from this
# repository (relative to hls/) when the engine comes from Vitis HLS instead of the Verilog.
HLS_IP = {"vendor": "vitfpga", "library": "hls", "name": "vitfpga_engine", "version": "1.0"}
HLS_IP_VLNV = ":".join(HLS_IP[k] for k in ("vendor", "library", "name", "version"))
HLS_IP_DIR = f"{HLS_PROJECT}/{HLS_SOLUTION}/impl/ip"

# ap_int's default width limit; wider words need AP_INT_MAX_W raised before ap_int.h.
_AP_INT_DEFAULT_MAX_W = 1024
_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

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


def _check(plan: ModelPlan, layers: dict[str, IntLinear]) -> None:
    check_model_plan(plan, layers)
    if not _PART.match(plan.part):
        raise BadInput(f"part name {plan.part!r} is not a plain Xilinx part name")
    if plan.clock_mhz <= 0:
        raise BadInput(f"clock must be positive, got {plan.clock_mhz} MHz")
    if not 0 <= plan.rom_depth <= plan.weight_depth:
        raise BadInput(f"rom_depth {plan.rom_depth} is outside the {plan.weight_depth} weight "
                       f"words")
    idents = [s.ident for s in plan.layers]
    # A plan read back from JSON could carry anything; only clean, distinct identifiers (which
    # the generated code prefixes, so keywords and macros cannot clash) may reach C++.
    if any(not _IDENT.match(i) for i in idents) or len(set(idents)) != len(idents):
        raise BadInput("the plan's layer identifiers are not distinct C identifiers")


def _test_rows(rows: int, k: int, salt: int = 0) -> np.ndarray:
    """Full-range int8 inputs from the splitmix64 finaliser of each index (offset by `salt`).

    A fixed integer hash, not an RNG stream, so the emitted files stay byte-identical across
    numpy versions; uint64 arithmetic wraps, which the hash relies on.
    """
    z = np.arange(rows * k, dtype=np.uint64).reshape(rows, k) + np.uint64(0x9E3779B97F4A7C15)
    z += np.uint64(salt) << np.uint64(32)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z & np.uint64(0xFF)).astype(np.int64) - 128


def _address_bits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def _beats_per_word(plan: ModelPlan) -> int:
    """Input beats (SIMD bytes each) that carry one weight word in a weight load."""
    return -(-plan.word_bits // (plan.simd * 8))


def _decoder_context(plan: ModelPlan, tables: ModelTables) -> dict[str, object]:
    """The weight decoders' constants (vitfpga/wdec.h) and the codebook tables."""
    spec = plan.decoder()
    nm_n, nm_m = spec.nm or (0, 0)
    cb_word_bits = 8 << max(plan.codebook_bits, 1)  # a stand-in word when there are no tables
    return {
        "lane_bits": plan.lane_bits, "offset_step": spec.offset_step,
        "width_mask": sum(1 << b for b in spec.widths),
        "nm_n": nm_n, "nm_m": nm_m, "nm_r": plan.nm_ratio,
        "maxbeats": plan.max_beats, "row_windows": -(-plan.max_beats // plan.nm_ratio),
        "cb_bits": plan.codebook_bits, "cb_alloc": len(tables.codebook) or 1,
        "cb_word_bits": cb_word_bits, "ternary": int(spec.ternary),
        "codebook": [hexword(w, cb_word_bits) for w in tables.codebook],
        "codec_kinds": sorted(CODEC_KINDS.items(), key=lambda kv: kv[1]),
    }


def _context(plan: ModelPlan, tables: ModelTables) -> dict[str, object]:
    pe, simd, word_bits = plan.pe, plan.simd, plan.word_bits
    slots = plan.layers
    rom_depth, ram_depth = plan.rom_depth, plan.ram_depth
    bpw = _beats_per_word(plan)
    load_bits = bpw * simd * 8  # a weight load assembles a word from BPW whole beats
    widest = max(word_bits, load_bits, simd * 8, pe * 32)
    # Round up to whole 1024-bit blocks, the granularity ap_int allocates its storage in.
    ap_int_max_w = None if widest <= _AP_INT_DEFAULT_MAX_W else -(-widest // 1024) * 1024
    lane_bits = {name: pe * bits for name, (bits, _) in CHANNEL_PAD.items()}
    # Loop iterations: one row of the smallest layer, all rows of the largest, and the mean.
    trip_min = min(s.iterations for s in slots)
    trip_max = max(trip_min, *(s.rows * s.iterations for s in slots))
    per_image = sum(s.rows * s.iterations for s in slots)
    trip_avg = min(max(round(per_image / len(slots)), trip_min), trip_max)
    program = [
        {"index": i, "ident": s.ident, "k": s.k, "n": s.n,
         "fields": ", ".join(str(int(entry[name])) for name, _ in PROGRAM_FIELDS)}
        for i, (s, entry) in enumerate(zip(slots, tables.program, strict=True))
    ]
    return {
        "pe": pe, "simd": simd, "wbits": plan.weight_bits, "nlayers": len(slots),
        "wdepth": plan.weight_depth, "cdepth": plan.channel_depth,
        "wdepth_last": plan.weight_depth - 1, "rom_depth": rom_depth, "rom_last": rom_depth - 1,
        "ram_depth": ram_depth,
        # C++ has no zero-length arrays: an empty part's (never indexed) parameter gets one word.
        "rom_alloc": max(rom_depth, 1), "ram_alloc": max(ram_depth, 1),
        "bpw": bpw, "bpw_bits": _address_bits(bpw), "load_bits": load_bits,
        # Report-only trip count of a load: the start-up load of every RAM word.
        "load_trip": max(ram_depth, 1) * bpw,
        "raddr_bits": _address_bits(max(ram_depth, 1)),
        "maxsf": plan.max_sf, "minsf": min(s.sf for s in slots),
        "maxnf": max(s.nf for s in slots), "word_bits": word_bits,
        **_decoder_context(plan, tables),
        "trip_min": trip_min, "trip_max": trip_max, "trip_avg": trip_avg,
        "bias_bits": lane_bits["bias"], "mult_bits": lane_bits["mult"],
        "shift_bits": lane_bits["shift"], "in_bits": simd * 8, "out_bits": pe * 8,
        "waddr_bits": _address_bits(plan.weight_depth),
        "caddr_bits": _address_bits(plan.channel_depth),
        # Fold counters count to SF-1 and NF-1 of the largest layer, never beyond; row-buffer
        # windows (at most SF) too.
        "fold_bits": _address_bits(max(plan.max_sf, max(s.nf for s in slots))),
        "ap_int_max_w": ap_int_max_w,
        "program_fields": PROGRAM_FIELDS,
        "program_field_names": ", ".join(name for name, _ in PROGRAM_FIELDS),
        "layer_names": [(s.ident, i) for i, s in enumerate(slots)],
        "program": program,
        # Only the ROM part is compiled in; the RAM part reaches the engine by a weight load.
        "rom_words": [hexword(w, word_bits) for w in tables.weights[:rom_depth]],
        "bias": [hexword(w, lane_bits["bias"]) for w in tables.bias],
        "mult": [hexword(w, lane_bits["mult"]) for w in tables.mult],
        "shift": [hexword(w, lane_bits["shift"]) for w in tables.shift],
        "part": plan.part,
        "period_ns": f"{1000.0 / plan.clock_mhz:.3f}",
        "tb_rows_max": TB_ROWS_MAX,
        "ram_words_file": RAM_WORDS_FILE,
        "hls_project": HLS_PROJECT, "hls_solution": HLS_SOLUTION, "hls_ip": HLS_IP,
        "hls_ip_dir": HLS_IP_DIR,
    }


def _write_test_vectors(plan: ModelPlan, layers: dict[str, IntLinear], tables: ModelTables,
                        tb_dir: Path) -> list[Path]:
    """The RAM words to load (if any), a few hashed rows per layer, their golden outputs, and the
    jobs file that lists them."""
    tb_dir.mkdir(exist_ok=True)
    written, jobs = [], []
    ram_words = tb_dir / RAM_WORDS_FILE
    ram_words.unlink(missing_ok=True)  # a stale file from an earlier split plan must not linger
    if plan.ram_depth:
        write_mem(ram_words, tables.weights[plan.rom_depth:], plan.word_bits)
        written.append(ram_words)
    for i, slot in enumerate(plan.layers):
        x = _test_rows(min(slot.rows, TB_ROWS_MAX) or 1, slot.k, salt=i)
        inputs, expected, output = (f"layer{i}_{part}.txt"
                                    for part in ("input", "expected", "output"))
        write_matrix(tb_dir / inputs, x)
        write_matrix(tb_dir / expected, linear_golden(x, layers[slot.name]))
        written += [tb_dir / inputs, tb_dir / expected]
        jobs.append(f"{i} {inputs} {expected} {output}\n")
    (tb_dir / JOBS_FILE).write_text("".join(jobs))
    return [*written, tb_dir / JOBS_FILE]


def emit_hls(plan: ModelPlan, layers: dict[str, IntLinear], out_dir: Path) -> list[Path]:
    """Write `out_dir/hls/` for the whole-model plan; returns the written files in a fixed order.

    Identical inputs give byte-identical files. Nothing from the model reaches the files except
    numbers and the plan's sanitised layer identifiers.
    """
    _check(plan, layers)
    hls_dir = Path(out_dir) / "hls"
    hls_dir.mkdir(parents=True, exist_ok=True)
    tables = model_tables(plan, layers)  # every weight word; split by plan.rom_depth below
    context = _context(plan, tables)
    written = []
    for template, name in _RENDERED:
        path = hls_dir / name
        path.write_text(render(f"hls/{template}", **context))
        written.append(path)
    written += copy_static("hls/include", hls_dir / "include")
    written += _write_test_vectors(plan, layers, tables, hls_dir / "tb_data")
    return written
