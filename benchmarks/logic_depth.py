"""Logic depth (LUT levels, `vitfpga.sim.depth`) of every Verilog unit against the level budget at
the board's clock (`hls.plan.timing.level_budget`): each unit synthesised alone by Yosys
`synth_xilinx -flatten` at xc7 (pynq-z2, 100 MHz) and at xcup (kv260, 250 MHz).

Units, at DeiT-Tiny-like sizes: the emitted engine (vitfpga_mvu.v with its AXI wrapper and
AXI-Lite control, a fixed PE x SIMD plan of a small seeded random int4 model), the 8-lane
LayerNorm (d = 192) and softmax (256 tokens), the vector memory (16 lanes), the LUT multiplier,
the adder tree and the AXI-Lite control block; and, where its source exists, the packed
two-products-a-DSP dot product. `--whole DIR` adds a whole design (an `rtl/`
folder or a run folder holding one; the top is found by name).

Each unit is measured alone: its ports start and end paths as registers do (the lutmul and the
adder tree are purely combinational, so theirs is a port-to-port depth; inside the engine both
sides are registered). "made of" breaks the deepest path down by cell kind: a carry cell counts
as a full level by the rule, which overstates carry-dominated paths (a chained carry cell takes a
small fraction of a LUT level and its route), so a path of few LUTs and many carries is nearer
its budget than its count says.

Prints the machine and a markdown table (also to --out); asserts nothing.

    .venv/bin/python benchmarks/logic_depth.py [--families xc7,xcup] [--whole runs/x] [--out t.md]
        [--keep DIR [--reuse]]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitfpga.errors import VerificationFailed
from vitfpga.hls.emit.rtl import emit_rtl
from vitfpga.hls.emit.templating import template_root
from vitfpga.hls.plan.boards import Board, get_board
from vitfpga.hls.plan.engine import fixed_plan
from vitfpga.hls.plan.system import ENGINE_TOP, WHOLE_TOP
from vitfpga.hls.plan.timing import board_level_budget
from vitfpga.quant.synthetic import random_layer
from vitfpga.report import machine_info
from vitfpga.runtime.intmath import EXP2_LUT
from vitfpga.sim.depth import DepthReport, logic_depth, netlist_depth
from vitfpga.sim.synth import SYNTH_TIMEOUT_S
from vitfpga.sim.tools import YOSYS_RUNNER

BOARDS = {"xc7": "pynq-z2", "xcup": "kv260"}
RTL = template_root() / "rtl" / "include"
VIT = template_root() / "vit" / "include"
WHOLE_TOPS = (WHOLE_TOP, ENGINE_TOP)  # the whole-model top first, then the engine


@dataclass(frozen=True)
class Job:
    """One synthesis: the sources, the top and its parameters, the `$readmemh` files."""

    sources: list[Path]
    top: str
    params: dict[str, int | str]
    mems: list[Path]


def _mem(path: Path, values: np.ndarray, bits: int) -> Path:
    path.write_text("".join(f"{int(v) & ((1 << bits) - 1):0{bits // 4}x}\n" for v in values))
    return path


def _engine(work: Path, board: Board) -> Job:
    """A small two-layer int4 engine on `board`: PE 4 x SIMD 16, its ROM in block RAM."""
    layers = {f"blocks.{i}.fc": random_layer(k, n, bits=4, seed=i, name=f"blocks.{i}.fc")
              for i, (k, n) in enumerate([(192, 64), (64, 64)])}
    plan = fixed_plan(layers, dict.fromkeys(layers, 4), board, pe=4, simd=16)
    emit_rtl(plan, layers, work)
    rtl = work / "rtl"
    return Job(sorted(rtl.glob("*.v")), ENGINE_TOP, {}, sorted(rtl.glob("*.mem")))


def _layernorm_vec(work: Path, board: Board) -> Job:
    """8 lanes: a table word holds 8 elements (PDEPTH / 8 words)."""
    rng = np.random.default_rng(0)
    words = [sum((int(v) & 0xFFFF) << (16 * i) for i, v in enumerate(row))
             for row in rng.integers(-2**15, 2**15, (48, 8))]
    bwords = [sum((int(v) & 0xFFFFFFFF) << (32 * i) for i, v in enumerate(row))
              for row in rng.integers(-2**31, 2**31, (48, 8))]
    mems = [_mem(work / "ln_gamma.mem", np.array(words, dtype=object), 128),
            _mem(work / "ln_beta.mem", np.array(bwords, dtype=object), 256)]
    return Job([VIT / "vitfpga_layernorm_vec.v", VIT / "vitfpga_fifo.v"], "vitfpga_layernorm_vec",
               {"DMAX": 192, "PDEPTH": 384, "L": 8}, mems)


def _softmax_vec(work: Path, board: Board) -> Job:
    lut = work / "exp2_lut.mem"
    lut.write_text("".join(f"{int(v):06x}\n" for v in EXP2_LUT))
    return Job([VIT / "vitfpga_softmax_vec.v", VIT / "vitfpga_fifo.v"], "vitfpga_softmax_vec",
               {"TMAX": 256, "L": 8}, [lut])


def _dot2x8(work: Path, board: Board) -> Job:
    """Two int8 dot products in one DSP chain: the operand shift is the family's (DSP48E1 16,
    E2 18), N the most terms that shift keeps exact (2 and 8)."""
    shift, n = (18, 8) if board.family == "xcup" else (16, 2)
    return Job([RTL / "vitfpga_mulpack.v"], "vitfpga_dot2x8", {"N": n, "SHIFT": shift}, [])


def _fixed(source: Path, top: str, params: dict[str, int | str], *uses: Path
           ) -> Callable[..., Job]:
    """A unit at fixed parameters; `uses` are the modules it instantiates."""
    return lambda work, board: Job([source, *uses], top, params, [])


UNITS: dict[str, Callable[[Path, Board], Job]] = {
    "engine (mvu, PE4 x SIMD16, int4)": _engine,
    "layernorm_vec (DMAX 192, 8 lanes)": _layernorm_vec,
    "softmax_vec (TMAX 256, 8 lanes)": _softmax_vec,
    "vmem (16 x int16 lanes, 1024 words)": _fixed(VIT / "vitfpga_vmem.v", "vitfpga_vmem",
                                                  {"LANES": 16, "EW": 16, "WORDS": 1024},
                                                  RTL / "vitfpga_lane_ram.v"),
    "lutmul (int4 x int8)": _fixed(RTL / "vitfpga_lutmul.v", "vitfpga_lutmul", {"WBITS": 4}),
    # one stage of the engine's tree: four int8 x int8 products
    "addtree (4 x 16 bit)": _fixed(RTL / "vitfpga_addtree.v", "vitfpga_addtree",
                                   {"N": 4, "IW": 16, "OW": 22}),
    "requant": _fixed(RTL / "vitfpga_requant.v", "vitfpga_requant", {}),
    "rescale_add": _fixed(RTL / "vitfpga_rescale_add.v", "vitfpga_rescale_add", {}),
    "axil_ctrl": _fixed(RTL / "vitfpga_axil_ctrl.v", "vitfpga_axil_ctrl", {}),
    # Measured once its source is in the tree.
    "mulpack dot2x8 (N 2 xc7, 8 xcup)": _dot2x8,
}
OPTIONAL = {"mulpack": RTL / "vitfpga_mulpack.v"}


def _whole(path: Path) -> Callable[[Path, Board], Job]:
    """The design in `path` (an rtl folder, or a folder holding one): its top by name."""
    rtl = path if list(path.glob("*.v")) else next(
        (d for d in sorted(path.rglob("rtl")) if list(d.glob("*.v"))), None)
    if rtl is None:
        raise SystemExit(f"no rtl folder with Verilog under {path}")
    names = {v.stem for v in rtl.glob("*.v")}
    top = next((t for t in WHOLE_TOPS if t in names), None)
    if top is None:
        raise SystemExit(f"{rtl}: none of the tops {', '.join(WHOLE_TOPS)}")
    return lambda work, board: Job(sorted(rtl.glob("*.v")), top, {}, sorted(rtl.glob("*.mem")))


def _measure(make: Callable[[Path, Board], Job], work: Path, board: Board, family: str,
             reuse: bool, timeout: float) -> DepthReport:
    """Synthesise and measure, or (reuse) measure a netlist an earlier run kept."""
    kept = work / "build" / "depth_report.json"
    if reuse and kept.is_file():
        old = json.loads(kept.read_text())
        netlist = json.loads((work / "build" / "netlist.json").read_text())
        return replace(netlist_depth(netlist, old["top"], family), seconds=old["seconds"])
    job = make(work, board)
    return logic_depth(job.sources, job.top, family, work / "build", params=job.params,
                       mem_files=job.mems, timeout=timeout)


def _row(name: str, board: Board, r: DepthReport) -> str:
    budget = board_level_budget(board)
    met = "yes" if r.levels <= budget else f"**no** (+{r.levels - budget})"
    dsp = f" ({r.comb_dsp} comb. DSP in the unit)" if r.comb_dsp else ""
    return (f"| {name} | {r.family} | {board.name} {board.clock_mhz:g} MHz | {r.levels} | "
            f"{budget} | {met} | {r.composition()}{dsp} | {r.seconds:.1f} | {r.route()} |")


def _overs(name: str, board: Board, r: DepthReport) -> list[str]:
    budget = board_level_budget(board)
    over = r.over(budget)
    if not over:
        return []
    ends = "; ".join(f"{end}: {levels}" for end, levels in over)
    return [f"- {name} on {r.family} (budget {budget}): {ends}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="xc7,xcup")
    ap.add_argument("--units", default="", help="comma-separated name prefixes (default all)")
    ap.add_argument("--whole", type=Path, help="a whole design's rtl folder or run folder")
    ap.add_argument("--out", type=Path, help="also write the table here (markdown)")
    ap.add_argument("--keep", type=Path, help="build here and keep the netlists (default: a "
                    "temporary folder)")
    ap.add_argument("--reuse", action="store_true", help="with --keep: measure the netlists "
                    "kept there by an earlier run again instead of synthesising")
    ap.add_argument("--timeout", type=float, default=SYNTH_TIMEOUT_S,
                    help="seconds one synthesis may take (default %(default)g; a DeiT-Tiny "
                    "whole design needs about 3,600 when other jobs share the machine)")
    args = ap.parse_args()
    version = subprocess.run([sys.executable, "-c", YOSYS_RUNNER, "-V"], capture_output=True,
                             text=True).stdout.strip()
    print(f"machine: {machine_info()}\nyosys: {version}\n")
    units = {n: f for n, f in UNITS.items()
             if (not args.units or any(n.startswith(p) for p in args.units.split(",")))
             and all(path.is_file() for key, path in OPTIONAL.items() if n.startswith(key))}
    if args.whole is not None:
        units[f"whole: {args.whole}"] = _whole(args.whole)
    lines = ["| unit | family | board | levels | budget | met | made of | synth s | deepest path |",
             "|---|---|---|---:|---:|---|---|---:|---|"]
    overs: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for family in args.families.split(","):
            board = get_board(BOARDS[family])
            for name, make in units.items():
                work = root / f"{family}_{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}"
                work.mkdir(parents=True, exist_ok=True)
                try:
                    r = _measure(make, work, board, family, args.reuse, args.timeout)
                except VerificationFailed as e:  # a unit still being written: say so, go on
                    lines.append(f"| {name} | {family} | {board.name} | - | - | synthesis "
                                 f"failed: {str(e).splitlines()[-1][:120]} | | | |")
                else:
                    lines.append(_row(name, board, r))
                    overs += _overs(name, board, r)
                print(lines[-1], flush=True)
    text = "\n".join([*lines, "", "Path ends over budget (deepest first):", *overs] if overs
                     else lines) + "\n"
    print("\n" + text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
