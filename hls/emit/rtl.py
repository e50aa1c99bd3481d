"""Write the Verilog engine of a whole-model plan: the rendered top, the hand-written modules, the
ROMs.

The top (`templates/rtl/vitfpga_engine.v.j2`) only wires and parameterises the hand-written
modules copied from `templates/rtl/include`; the model's integers reach the hardware as
`$readmemh` files laid out by `vitfpga.hls.plan.layout.model_tables`, so the Verilog and the HLS C++
engines read the very same words.
"""

from __future__ import annotations

from pathlib import Path

from vitfpga.hls.emit.templating import copy_static, render, write_mem
from vitfpga.hls.plan.engine import ModelPlan, check_model_plan
from vitfpga.hls.plan.layout import CHANNEL_PAD, PROGRAM_BITS, model_tables
from vitfpga.hls.plan.system import ENGINE_TOP
from vitfpga.ir import IntLinear
from vitfpga.runtime.codecs import CODEC_KINDS

__all__ = ["CODEBOOK_FILE", "MEM_FILES", "TOP_FILE", "decoder_params", "emit_rtl"]

TOP_FILE = f"{ENGINE_TOP}.v"
# File names the top passes to the ROM parameters; simulators and Vivado resolve them relative to
# their working directory, so they must stay plain names.
MEM_FILES = {"weights": "weights.mem", "weights_ram": "weights_ram.mem", "bias": "bias.mem",
             "mult": "mult.mem", "shift": "shift.mem", "program": "program.mem"}
# The codebook tables, written only for a design with a codebook decoder (CB_BITS > 0).
CODEBOOK_FILE = "codebook.mem"


def decoder_params(plan: ModelPlan) -> dict[str, int]:
    """The weight decoders' parameters of `vitfpga_mvu` (docs/engine.md, "Decoder hardware"):
    only the decoders these name are built."""
    spec = plan.decoder()
    kinds = {CODEC_KINDS[s.codec.partition(":")[0]] for s in plan.layers}
    return {
        "LANE_BITS": spec.lane_bits, "OFFSET_STEP": spec.offset_step,
        # Only elements narrower than the lane move within it; the wider bits are read in place.
        "SHIFT_BITS": spec.shift_bits,
        # An element spans two words only when its width does not divide the lane.
        "STRADDLE": int(any(spec.lane_bits % s.ebits for s in plan.layers)),
        "WMASK": sum(1 << b for b in spec.widths), "KINDS": sum(1 << k for k in kinds),
        "NM_N": spec.nm[0] if spec.nm else 0, "NM_M": spec.nm[1] if spec.nm else 0,
        "CB_BITS": spec.codebook_bits, "MAXBEATS": plan.max_beats,
    }


def _context(plan: ModelPlan) -> dict[str, object]:
    """Every number the top shows, computed here so the template holds no arithmetic."""
    return {
        "pe": plan.pe, "simd": plan.simd, "weight_bits": plan.weight_bits,
        "word_bits": plan.word_bits, "rom_depth": plan.rom_depth, "ram_depth": plan.ram_depth,
        "channel_depth": plan.channel_depth, "decoder": decoder_params(plan),
        "layers": [{"index": i, "ident": s.ident, "k": s.k, "n": s.n, "sf": s.sf, "nf": s.nf,
                    "relu": int(s.relu), "w_base": s.w_base, "c_base": s.c_base,
                    "codec": s.codec, "bits": s.bits}
                   for i, s in enumerate(plan.layers)],
        "in_msb": plan.simd * 8 - 1, "in_keep_msb": plan.simd - 1,
        "out_msb": plan.pe * 8 - 1, "out_keep_msb": plan.pe - 1, "out_keep_bits": plan.pe,
        "files": MEM_FILES, "codebook_file": CODEBOOK_FILE, "top_name": ENGINE_TOP,
    }


def emit_rtl(plan: ModelPlan, layers: dict[str, IntLinear], out_dir: Path) -> list[Path]:
    """Write `out_dir/rtl/`; return the files written: top, modules (sorted), then the ROMs."""
    check_model_plan(plan, layers)
    rtl = Path(out_dir) / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)

    top = rtl / TOP_FILE
    top.write_text(render("rtl/vitfpga_engine.v.j2", **_context(plan)))
    written = [top, *copy_static("rtl/include", rtl)]

    t = model_tables(plan, layers)
    tables = [
        # The RAM part is not in the bitstream: the host streams weights_ram.mem in at start-up.
        ("weights", t.weights[:plan.rom_depth], plan.word_bits),
        ("weights_ram", t.weights[plan.rom_depth:], plan.word_bits),
        ("bias", t.bias, plan.pe * CHANNEL_PAD["bias"][0]),
        ("mult", t.mult, plan.pe * CHANNEL_PAD["mult"][0]),
        ("shift", t.shift, plan.pe * CHANNEL_PAD["shift"][0]),
        ("program", t.program_words, PROGRAM_BITS),
    ]
    for key, words, bits in tables:
        path = rtl / MEM_FILES[key]
        write_mem(path, words, bits)
        written.append(path)
    if plan.codebook_bits:
        path = rtl / CODEBOOK_FILE
        write_mem(path, t.codebook, 8 << plan.codebook_bits)
        written.append(path)
    return written
