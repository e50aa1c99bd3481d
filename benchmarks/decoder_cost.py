"""What the weight decoders cost in logic, by Yosys, and how the planner's estimate compares.

The digits ViT's 14 layer shapes (seeded random weights shaped for each codec; not a trained
model) folded PE 16 x SIMD 4 on the Pynq-Z2 (xc7z020: Yosys `synth_xilinx -family xc7`), the
engine emitted as Verilog and synthesised whole. Each encoded design is paired with the dense
engine of the same multiplier width, whose decoder is a plain slice; the decoder's cost is the
difference in LUTs. Encoded weights need a smaller ROM, which Yosys may build from LUTs where
the dense one takes block RAM; so that only logic is compared, the weight ROM is synthesised
in block RAM on both sides (a `rom_style = "block"` attribute on the benchmark's copy; the
emitted design leaves the choice to the tools).

    .venv/bin/python benchmarks/decoder_cost.py [--designs dense4,nm24,...] [--json FILE]

Prints a table and the machine; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitfpga.hls.emit.rtl import emit_rtl
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, fixed_plan
from vitfpga.ir import IntLinear
from vitfpga.quant.model import PRESETS, linear_shapes
from vitfpga.quant.synthetic import random_layer
from vitfpga.report import machine_info
from vitfpga.sim.synth import SynthReport, synthesize

PE, SIMD, BOARD = 16, 4, "pynq-z2"
# name: (block codec, block bits, end bits, the dense baseline it is measured against)
DESIGNS: dict[str, tuple[str, int, int, str]] = {
    "dense4": ("dense", 4, 4, ""),
    "dense8": ("dense", 8, 8, ""),
    "mixed2-8": ("dense", 2, 8, "dense8"),
    "ternary-8": ("ternary", 2, 8, "dense8"),
    "nm24-4": ("nm:2:4", 4, 4, "dense4"),
    "codebook3-4": ("codebook:3", 4, 4, "dense4"),
    "mixed-all": ("mixed", 4, 8, "dense8"),
}


def _layers(codec: str, bits: int, end_bits: int) -> tuple[dict[str, IntLinear], dict[str, int]]:
    """The digits shapes: block layers in `codec` (mixed: a different codec per block), the
    patch embedding and head dense at `end_bits`."""
    mixed = ("nm:2:4", "codebook:3", "ternary")
    layers, rows = {}, {}
    for i, (name, k, n, r) in enumerate(linear_shapes(PRESETS["vit-digits"])):
        c, b = ("dense", end_bits) if not name.startswith("blocks.") else (codec, bits)
        if codec == "mixed" and name.startswith("blocks."):
            c = mixed[int(name.split(".")[1]) % 3]
            b = 2 if c == "ternary" else bits
        layers[name] = random_layer(k, n, bits=b, seed=i, name=name, codec=c)
        rows[name] = r
    return layers, rows


def _synth(plan: ModelPlan, layers: dict[str, IntLinear], work: Path, block_rom: bool
           ) -> SynthReport:
    emit_rtl(plan, layers, work)
    rtl = work / "rtl"
    if block_rom:
        mvu = rtl / "vitfpga_mvu.v"
        text = mvu.read_text()
        rom = "reg [WW-1:0] wrom [0:ROM_DEPTH-1];"
        if rom not in text:
            raise SystemExit("vitfpga_mvu.v has no weight ROM declaration to mark")
        mvu.write_text(text.replace(rom, f'(* rom_style = "block" *) {rom}'))
    return synthesize(rtl, work / "synth", family="xc7")


def measure(name: str, work: Path) -> dict[str, object]:
    """Yosys on the design as emitted (against the planner) and with its ROM in block RAM
    (the decoder's cost)."""
    codec, bits, end_bits, _ = DESIGNS[name]
    layers, rows = _layers(codec, bits, end_bits)
    plan = fixed_plan(layers, rows, get_board(BOARD), PE, SIMD)
    start = time.perf_counter()
    emitted = _synth(plan, layers, work / name / "emitted", block_rom=False)
    synth = _synth(plan, layers, work / name / "block_rom", block_rom=True)
    return {"design": name, "codecs": sorted({s.codec for s in plan.layers}),
            "lane_bits": plan.lane_bits, "weight_bits": plan.weight_bits,
            "onchip_weight_bits": plan.onchip_weight_bits, "yosys_lut": synth.lut,
            "yosys_ff": synth.ff, "yosys_dsp": synth.dsp, "yosys_bram36": synth.bram36,
            "planner_lut": plan.lut, "planner_bram36": plan.bram36,
            "emitted_lut": emitted.lut, "emitted_bram36": emitted.bram36,
            "seconds": round(time.perf_counter() - start)}


def _decoder(rows: dict[str, dict[str, object]], name: str) -> tuple[int, float] | None:
    base = DESIGNS[name][3]
    if not base or base not in rows:
        return None
    extra = int(rows[name]["yosys_lut"]) - int(rows[base]["yosys_lut"])
    return extra, extra / int(rows[name]["yosys_lut"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", default=",".join(DESIGNS))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    names = [n for n in args.designs.split(",") if n]
    unknown = [n for n in names if n not in DESIGNS]
    if unknown:
        ap.error(f"unknown design {unknown[0]}; known: {', '.join(DESIGNS)}")
    rows: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="vitfpga-decoders-") as tmp:
        for name in names:
            rows[name] = measure(name, Path(tmp))
            print(f"  {name}: {rows[name]['yosys_lut']} LUT, ROM in BRAM; "
                  f"{rows[name]['emitted_lut']} as emitted ({rows[name]['seconds']} s)",
                  file=sys.stderr, flush=True)
    print(f"Digits shapes on PE {PE} x SIMD {SIMD}, {BOARD} (Yosys synth_xilinx xc7)\n")
    print("| design | codecs | lane bits | on-chip weight bits | Yosys LUT / FF / DSP / BRAM36, "
          "ROM in BRAM | decoder LUT (share of the engine's LUTs) | as emitted: Yosys LUT / "
          "BRAM36 | planner LUT / BRAM36 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        dec = _decoder(rows, name)
        dec_text = "—" if dec is None else f"{dec[0]:+,} ({dec[1]:.1%})"
        print(f"| {name} | {', '.join(r['codecs'])} | {r['lane_bits']} | "
              f"{r['onchip_weight_bits']:,} | {r['yosys_lut']:,} / {r['yosys_ff']:,} / "
              f"{r['yosys_dsp']} / {r['yosys_bram36']:g} | {dec_text} | {r['emitted_lut']:,} / "
              f"{r['emitted_bram36']:g} | {r['planner_lut']:,} / {r['planner_bram36']:g} |")
    m = machine_info()
    print(f"\nMachine: {m['cpu']}, {m['cores']} cores, Python {m['python']}.")
    if args.json is not None:
        args.json.write_text(json.dumps(list(rows.values()), indent=2) + "\n")


if __name__ == "__main__":
    main()
