"""The emitted project directory: everything a user takes to the vendor tools and the board
(design.md §7).

    plan.json, system.json   the plan and the Zynq system everything below is generated from
    hls/                     Vitis HLS C++, csim testbench and vectors, run_hls.tcl
    rtl/                     Verilog engine and its `$readmemh` memories
    vivado/build.tcl         project, block design (PS, AXI DMA, engine), bitstream and .hwh
    pynq/                    the board's driver package and run_on_board.py
    Makefile, README.md      `make bitstream | hls | deploy BOARD_IP=...`

The whole-model project (docs/vit.md: every op on chip, image in, logits out) has the same
layout with `vitfpga_vit` in rtl/, `whole_model.json` (its plan) and no hls/. The same plan,
layers and driver source give a byte-identical tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vitfpga import __version__
from vitfpga.errors import BadInput
from vitfpga.hls.emit.hls import emit_hls
from vitfpga.hls.emit.pynq import DriverSource, emit_pynq
from vitfpga.hls.emit.rtl import emit_rtl
from vitfpga.hls.emit.templating import render
from vitfpga.hls.emit.vit import emit_vit
from vitfpga.hls.emit.vivado import BOARD_LEDS, emit_vivado
from vitfpga.hls.plan.boards import Board
from vitfpga.hls.plan.engine import ModelPlan, check_model_plan
from vitfpga.hls.plan.program import VitProgram
from vitfpga.hls.plan.system import (
    ENGINE_REGS,
    VIVADO_VERSIONS,
    WHOLE_TOP,
    SystemSpec,
    system_spec,
)
from vitfpga.hls.plan.whole import WholeModelPlan
from vitfpga.ir import IntLinear

__all__ = ["SYSTEM_FILE", "WHOLE_FILE", "WholeModel", "write_project"]

SYSTEM_FILE = "system.json"
WHOLE_FILE = "whole_model.json"


@dataclass(frozen=True)
class WholeModel:
    """The whole-model design (docs/vit.md) to build instead of the host-offload engine: its op
    program and what the planner says it costs."""

    program: VitProgram
    plan: WholeModelPlan


def _readme_context(spec: SystemSpec, plan: ModelPlan, source: DriverSource,
                    from_hls: bool, whole: WholeModel | None) -> dict[str, object]:
    family, cfg, model = spec.family, source.spec, source.model
    label = (f"the trained {model} integer model" if source.model_file is not None
             else f"{model} dimensions with seeded random weights (not a trained model)")
    return {
        "design": spec.design, "top": spec.top, "model": model, "board": spec.board,
        "part": spec.part,
        "board_part": spec.board_part, "version": __version__, "label": label,
        "from_hls": from_hls, "pe": plan.pe, "simd": plan.simd,
        "weight_bits": plan.weight_bits, "nlayers": len(plan.layers),
        "codecs": ", ".join(sorted({f"{c.codec} int{c.bits}" for c in plan.layers})),
        "clock_mhz": f"{plan.clock_mhz:g}", "weight_words": f"{plan.weight_depth:,}",
        "word_bits": plan.word_bits, "rom_words": f"{plan.rom_depth:,}",
        "ram_words": plan.ram_depth, "bram36": f"{plan.bram36:g}", "uram": plan.uram,
        "dsp": plan.dsp, "lut": f"{plan.lut:,}",
        "cycles_per_image": f"{plan.cycles_per_image:,}",
        "images_per_s": f"{plan.clock_mhz * 1e6 / plan.cycles_per_image:,.0f}",
        "vivado_versions": VIVADO_VERSIONS, "in_chans": cfg.in_chans,
        "image_size": cfg.image_size, "in_bits": spec.in_bits, "out_bits": spec.out_bits,
        "ps_ip": family.ip, "master": family.master, "engine_cell": spec.engine_cell,
        "dma_cell": spec.dma_cell, "ctrl_base": f"0x{spec.ctrl_base:08X}",
        "ctrl_range": f"{spec.ctrl_range // 1024}K", "dma_base": f"0x{spec.dma_base:08X}",
        "dma_range": f"{spec.dma_range // 1024}K",
        **_gpio_context(spec),
        "registers": [(name, f"0x{offset:02X}") for name, offset in ENGINE_REGS.items()],
        "whole": None if whole is None else _whole_context(whole.plan),
    }


def _gpio_context(spec: SystemSpec) -> dict[str, object]:
    """The `leds` GPIO's row of the address map, and where its outputs go."""
    leds = BOARD_LEDS.get(spec.board)
    pins = (f"the board's LEDs (`{leds}`) when built with the board file" if leds and
            spec.board_part else "no pins (the register reads back what is written)")
    return {"gpio_cell": spec.gpio_cell, "gpio_bits": spec.gpio_bits,
            "gpio_base": f"0x{spec.gpio_base:08X}", "gpio_range": f"{spec.gpio_range // 1024}K",
            "gpio_pins": pins}


def _whole_context(w: WholeModelPlan) -> dict[str, object]:
    return {"cycles_per_image": f"{w.ideal_cycles_per_image:,}",
            "images_per_s": f"{w.ideal_images_per_s:,.0f}", "bram36": f"{w.bram36:g}",
            "uram": w.uram, "dsp": w.dsp, "lut": f"{w.lut:,}",
            "ps_pl_bytes": f"{w.ps_pl_bytes_per_image:,}",
            "offload_ps_pl_bytes": f"{w.host_offload_ps_pl_bytes_per_image:,}",
            "activation_bytes": f"{w.activation_bytes:,}"}


def write_project(plan: ModelPlan, layers: dict[str, IntLinear], out_dir: Path, *,
                  board: Board, source: DriverSource, from_hls: bool = False,
                  whole: WholeModel | None = None) -> list[Path]:
    """Write the project into `out_dir` (which the caller makes atomic); return its files.
    With `whole`, the project is the whole-model design (image in, logits out) on `plan`'s
    engine, and has no hls/ (the whole model exists as Verilog only). Raises BadInput before
    writing anything when the board cannot host a PYNQ system."""
    check_model_plan(plan, layers, whole=whole is not None)
    if whole is not None and from_hls:
        raise BadInput("--from-hls: there is no HLS C++ of the whole model yet (docs/vit.md); "
                       "the whole-model project builds from the emitted Verilog")
    spec = (system_spec(plan, board, source.model) if whole is None
            else system_spec(plan, board, f"{source.model}-whole", WHOLE_TOP))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [
        ("plan.json", plan.to_json()),
        (SYSTEM_FILE, spec.to_json()),
        ("Makefile", render("project/Makefile.j2", design=spec.design, model=source.model,
                            board=spec.board, part=spec.part, version=__version__,
                            from_hls=from_hls, whole=whole is not None)),
        ("README.md", render("project/README.md.j2",
                             **_readme_context(spec, plan, source, from_hls, whole))),
    ]
    if whole is not None:
        files.append((WHOLE_FILE, json.dumps(whole.plan.to_json(), indent=2) + "\n"))
    written = []
    for name, text in files:
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    if whole is None:
        written += [*emit_hls(plan, layers, out_dir), *emit_rtl(plan, layers, out_dir)]
    else:
        written += emit_vit(plan, layers, whole.program, out_dir / "rtl", whole.plan.styles)
    return [*written, *emit_vivado(spec, plan, out_dir, from_hls),
            *emit_pynq(spec, plan, layers, source, out_dir,
                       None if whole is None else whole.program)]
