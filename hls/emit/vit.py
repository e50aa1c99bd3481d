"""Write the whole-model Verilog (docs/vit.md): the rendered top, the hand-written modules, the
memory images of the engine (its layers plus the attention products) and of the whole-model
units (op program, XM constants, LayerNorm, GELU and exp tables)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vitfpga.hls.emit.rtl import CODEBOOK_FILE, MEM_FILES, decoder_params
from vitfpga.hls.emit.templating import copy_static, render, write_mem
from vitfpga.hls.plan.engine import ModelPlan, check_model_plan
from vitfpga.hls.plan.layout import (
    CHANNEL_PAD,
    PROGRAM_BITS,
    channel_words,
    model_tables,
    program_words,
)
from vitfpga.hls.plan.program import OP_BITS, VitProgram, op_words
from vitfpga.hls.plan.system import WHOLE_TOP
from vitfpga.hls.plan.whole import STYLE_CODES, STYLE_PARAMS, pack_shift, rom_blocks
from vitfpga.ir import IntLinear
from vitfpga.runtime.codecs import pack_lanes

__all__ = ["VIT_CODEBOOK", "VIT_FILES", "VIT_RAM_FILE", "VIT_TOP", "VIT_TOP_FILE", "emit_vit"]

VIT_TOP = WHOLE_TOP
VIT_TOP_FILE = f"{VIT_TOP}.v"
# Core parameter -> the plain file name it reads (resolved against the simulator's directory).
VIT_FILES = {"WEIGHT_FILE": "weights.mem", "BIAS_FILE": "bias.mem", "MULT_FILE": "mult.mem",
             "SHIFT_FILE": "shift.mem", "PROGRAM_FILE": "program.mem",
             "OPS_FILE": "vit_ops.mem", "XM_EVEN_FILE": "xm_even.mem",
             "XM_ODD_FILE": "xm_odd.mem", "GAMMA_FILE": "ln_gamma.mem",
             "BETA_FILE": "ln_beta.mem", "GELU_FILE": "gelu.mem", "EXP_FILE": "exp2_lut.mem"}
# The engine's codebook tables, only for a design with a codebook decoder.
VIT_CODEBOOK = {"CODEBOOK_FILE": CODEBOOK_FILE}
# Weight words after the ROM's, which the driver streams into the engine's RAM: no design source.
VIT_RAM_FILE = {"RAM_WEIGHTS": MEM_FILES["weights_ram"]}


def _words(elements: int, lanes: int) -> int:
    return math.ceil(elements / lanes) + 1  # one spare word: an unaligned access spans two


def _banks(values: tuple[int, ...], lanes: int, words: int, bits: int) -> tuple[list[int],
                                                                                list[int]]:
    flat = np.zeros(words * lanes, dtype=np.int64)
    flat[:len(values)] = values
    packed = [pack_lanes(flat[w * lanes:(w + 1) * lanes].tolist(), bits) for w in range(words)]
    half = (words + 1) // 2
    even, odd = packed[0::2], packed[1::2]
    return even + [0] * (half - len(even)), odd + [0] * (half - len(odd))


def _lane_words(values: tuple[int, ...], lanes: int, bits: int) -> list[int]:
    flat = list(values) or [0] * lanes
    return [pack_lanes(flat[i:i + lanes], bits) for i in range(0, len(flat), lanes)]


def _signed(values: tuple[int, ...], bits: int) -> list[int]:
    return [int(v) & ((1 << bits) - 1) for v in values]


def emit_vit(plan: ModelPlan, layers: dict[str, IntLinear], prog: VitProgram, out_dir: Path,
             styles: dict[str, str] | None = None) -> list[Path]:
    """Write `out_dir/` (the whole-model RTL); return the files written. `styles`: the memories
    the whole-model plan placed out of block RAM (WholeModelPlan.styles); synthesis places the
    rest."""
    check_model_plan(plan, layers, whole=True)
    styles = styles or {}
    if unknown := sorted(set(styles) - STYLE_PARAMS.keys()):
        raise ValueError(f"no placement parameter in the RTL for {unknown}")
    rtl = Path(out_dir)
    rtl.mkdir(parents=True, exist_ok=True)
    t = model_tables(plan, layers, pairs=prog.pairs)
    pe, lanes = plan.pe, prog.lanes
    xm_words, bm_words = _words(prog.xm_depth, lanes), _words(prog.bm_depth, lanes)
    ideal = prog.bound_cycles()
    ops_block, exp_block = rom_blocks(plan, prog)
    # The row buffer's depth is the program's (attention rows too), not only the layers'.
    decoder = {k: v for k, v in decoder_params(plan).items() if k != "MAXBEATS"}
    mem_names = {**VIT_FILES, **(VIT_CODEBOOK if plan.codebook_bits else {})}
    files_read = dict(mem_names)
    mem_names.update(VIT_RAM_FILE)
    top = rtl / VIT_TOP_FILE
    top.write_text(render(
        "vit/vitfpga_vit.v.j2", top_name=VIT_TOP, pe=pe, simd=plan.simd, lanes=lanes,
        xm_align=prog.xm_align, bm_align=prog.bm_align,
        weight_bits=plan.weight_bits, decoder=decoder, tokens=prog.tokens, dim=prog.dim,
        ops=[{"index": i, "kind": o.kind, "name": o.name} for i, o in enumerate(prog.ops)],
        ops_block=int(ops_block), exp_block=int(exp_block),
        ideal_cycles=ideal, entries=len(plan.layers) + len(prog.entries),
        rom_depth=plan.rom_depth, ram_depth=plan.ram_depth,
        channel_depth=plan.channel_depth + len(prog.tables["bias"]) // pe,
        max_sf=prog.max_sf, op_depth=prog.op_depth, pack=pack_shift(plan), groups=plan.groups,
        pair=int(prog.pairs),
        xm_words=xm_words,
        bm_words=bm_words, **{p: STYLE_CODES.get(styles.get(name, ""), 0)
                                for name, p in STYLE_PARAMS.items()},
        ln_dmax=prog.dim, ln_pdepth=max(len(prog.ln_gamma), prog.ln_lanes),
        ln_lanes=prog.ln_lanes, sm_tmax=prog.tokens, sm_lanes=prog.sm_lanes,
        gelu_depth=max(len(prog.gelu), 1), files=files_read,
        in_msb=plan.simd * 8 - 1, in_keep_msb=plan.simd - 1, out_msb=pe * 8 - 1,
        out_keep_msb=pe - 1, out_keep_bits=pe))
    written = [top, *copy_static("rtl/include", rtl), *copy_static("vit/include", rtl)]

    extra = {name: channel_words(np.asarray(prog.tables[name]), pe, CHANNEL_PAD[name][0])
             for name in ("bias", "mult", "shift")}
    even, odd = _banks(prog.xm_init, lanes, xm_words, 16)
    files = {
        "WEIGHT_FILE": (t.weights[:plan.rom_depth], plan.word_bits),
        # Not in the bitstream: the host streams these words in at start-up (a weight load).
        "RAM_WEIGHTS": (t.weights[plan.rom_depth:], plan.word_bits),
        "BIAS_FILE": (t.bias + extra["bias"], pe * 32),
        "MULT_FILE": (t.mult + extra["mult"], pe * 32),
        "SHIFT_FILE": (t.shift + extra["shift"], pe * 8),
        "PROGRAM_FILE": (t.program_words + program_words(list(prog.entries)), PROGRAM_BITS),
        "OPS_FILE": (op_words(prog.ops), OP_BITS),
        "XM_EVEN_FILE": (even, lanes * 16),
        "XM_ODD_FILE": (odd, lanes * 16),
        # LN_LANES elements a word, as the vector LayerNorm reads them (element i*L + j in
        # lane j of word i)
        "GAMMA_FILE": (_lane_words(prog.ln_gamma, prog.ln_lanes, 16), prog.ln_lanes * 16),
        "BETA_FILE": (_lane_words(prog.ln_beta, prog.ln_lanes, 32), prog.ln_lanes * 32),
        "GELU_FILE": (_signed(prog.gelu, 8) or [0], 8),
        "EXP_FILE": (list(prog.exp_lut), 23),
    }
    if plan.codebook_bits:
        # One table per program entry; the attention entries after the layers read none.
        files["CODEBOOK_FILE"] = (t.codebook + [0] * len(prog.entries), 8 << plan.codebook_bits)
    for key, (words, bits) in files.items():
        path = rtl / mem_names[key]
        write_mem(path, words, bits)
        written.append(path)
    return written
