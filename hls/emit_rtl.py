"""Write the Verilog engine for one layer: the rendered top, the hand-written modules, the ROMs.

The top (`templates/rtl/vitfpga_engine.v.j2`) only wires and parameterises the hand-written
modules copied from `templates/rtl/include`; the layer's integers reach the hardware as
`$readmemh` files in the layout of `vitfpga.hls.layout`, so the Verilog and the HLS C++ engines
read the very same words.
"""

from __future__ import annotations

from pathlib import Path

from vitfpga.hls.emit import copy_static, render, write_mem
from vitfpga.hls.layout import channel_words, weight_words
from vitfpga.hls.plan import EnginePlan, check_plan_matches
from vitfpga.ir import IntLinear

__all__ = ["MEM_FILES", "TOP_FILE", "emit_rtl"]

TOP_FILE = "vitfpga_engine.v"
# File names the top passes to the ROM parameters; simulators and Vivado resolve them relative to
# their working directory, so they must stay plain names.
MEM_FILES = {"weights": "weights.mem", "bias": "bias.mem", "mult": "mult.mem",
             "shift": "shift.mem"}

# Lane widths of the per-channel tables (docs/engine.md). M < 2^31 and S <= 62, so both fit the
# signed lanes that `channel_words` packs, and their hex words read back as the unsigned values.
_BIAS_BITS = 32
_MULT_BITS = 32
_SHIFT_BITS = 8


def _context(plan: EnginePlan, layer: IntLinear) -> dict[str, object]:
    """Every number the top shows, computed here so the template holds no arithmetic."""
    return {
        "ident": plan.ident,
        "k": plan.k, "n": plan.n, "pe": plan.pe, "simd": plan.simd,
        "sf": plan.sf, "nf": plan.nf,
        "weight_bits": plan.weight_bits, "word_bits": plan.word_bits,
        "weight_depth": plan.weight_depth,
        "relu": int(layer.relu),
        "in_msb": plan.simd * 8 - 1, "in_keep_msb": plan.simd - 1,
        "out_msb": plan.pe * 8 - 1, "out_keep_msb": plan.pe - 1, "out_keep_bits": plan.pe,
        "weight_file": MEM_FILES["weights"], "bias_file": MEM_FILES["bias"],
        "mult_file": MEM_FILES["mult"], "shift_file": MEM_FILES["shift"],
    }


def emit_rtl(plan: EnginePlan, layer: IntLinear, out_dir: Path) -> list[Path]:
    """Write `out_dir/rtl/`; return the files written: top, modules (sorted), then the ROMs."""
    check_plan_matches(plan, layer)
    rtl = Path(out_dir) / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)

    top = rtl / TOP_FILE
    top.write_text(render("rtl/vitfpga_engine.v.j2", **_context(plan, layer)))
    written = [top, *copy_static("rtl/include", rtl)]

    tables = [
        ("weights", weight_words(layer.weight, plan.pe, plan.simd, plan.weight_bits),
         plan.word_bits),
        ("bias", channel_words(layer.bias, plan.pe, _BIAS_BITS), plan.pe * _BIAS_BITS),
        ("mult", channel_words(layer.multiplier, plan.pe, _MULT_BITS), plan.pe * _MULT_BITS),
        ("shift", channel_words(layer.shift, plan.pe, _SHIFT_BITS), plan.pe * _SHIFT_BITS),
    ]
    for key, words, bits in tables:
        path = rtl / MEM_FILES[key]
        write_mem(path, words, bits)
        written.append(path)
    return written
