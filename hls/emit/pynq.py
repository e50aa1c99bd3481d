"""Emit the PYNQ driver package of a project: `out_dir/pynq/` (design.md §7).

    pynq/setup.py                 pip-installable on the board (setuptools 44+), numpy its only
                                  dependency
    pynq/run_on_board.py          classifies test_images.npz, checks against the CPU golden
    pynq/test_images.npz          a few test images and labels (trained runs only)
    pynq/<design>/driver.py       hand-written, the same for every model (templates/pynq)
    pynq/<design>/hw.json         what the driver needs to know of this engine and system
    pynq/<design>/model.npz       the integer model: host-side parameters and layer integers
    pynq/<design>/weights_ram.bin the weight words URAM needs after configuration, as DMA bytes
    pynq/<design>/runtime/        vitfpga.runtime copied verbatim: the integer golden's host ops
    pynq/<design>/overlay/        where `make bitstream` puts <design>.bit, .hwh and .xsa

Every file is written deterministically (npz members carry a fixed timestamp).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitfpga import __version__
from vitfpga.hls.emit.templating import render, template_root
from vitfpga.hls.plan.engine import ModelPlan
from vitfpga.hls.plan.layout import model_tables
from vitfpga.hls.plan.program import VitProgram
from vitfpga.hls.plan.system import ENGINE_REGS, SystemSpec
from vitfpga.ir import IntLinear, IntModel, ModelSpec, load_model
from vitfpga.runtime.model import write_npz

__all__ = ["PACKAGE_DATA", "SETUP_FILE", "DriverSource", "emit_pynq", "hw_description",
           "ram_bytes"]

# The driver package's installer: a setup.py, which every setuptools a PYNQ image has (44 on
# PYNQ 2.7) understands, and the package's data files as its package_data patterns.
SETUP_FILE = "setup.py"
PACKAGE_DATA = ("hw.json", "model.npz", "weights_ram.bin", "overlay/*.bit", "overlay/*.hwh",
                "overlay/*.xsa", "overlay/*.txt")


@dataclass(frozen=True)
class DriverSource:
    """What the driver package carries beyond the engine: the integer model (a trained run's
    `model.npz`; None for a preset, whose package then holds its layers only and runs single
    layers) and, for a trained model, test images with their labels."""

    model: str  # e.g. "vit-digits", "deit-tiny"
    spec: ModelSpec
    model_file: Path | None = None
    images: np.ndarray | None = None  # (B, C, H, W) float32, preprocessed as in training
    labels: np.ndarray | None = None
    # The whole integer model of a preset or an untrained user model, for the whole-model design
    # (its driver quantises images and needs every parameter, not only the layers).
    int_model: IntModel | None = None


def ram_bytes(plan: ModelPlan, layers: dict[str, IntLinear]) -> tuple[bytes, int]:
    """The RAM part's weight words as the DMA streams them (docs/engine.md, weight load): each
    word little-endian in `ceil(word_bits / (SIMD*8))` beats of SIMD bytes. Returns the bytes
    and the bytes per word."""
    beat = plan.simd
    per_word = -(-plan.word_bits // (beat * 8)) * beat
    words = model_tables(plan, layers).weights[plan.rom_depth:]
    return b"".join(w.to_bytes(per_word, "little") for w in words), per_word


def hw_description(spec: SystemSpec, plan: ModelPlan, per_word: int,
                   whole: VitProgram | None = None) -> dict[str, object]:
    """`hw.json`: the names, registers and folding the driver uses; the static checks compare
    its names with what build.tcl creates. `whole` (the whole-model design's program) adds
    the stream shapes of one image: patch rows in, logits out (docs/vit.md)."""
    return {
        "design": spec.design, "top": spec.top, "board": spec.board, "part": spec.part,
        "clock_mhz": spec.clock_mhz, "engine_cell": spec.engine_cell,
        "dma_cell": spec.dma_cell, "ctrl_base": spec.ctrl_base, "dma_base": spec.dma_base,
        "gpio_cell": spec.gpio_cell,
        "in_bits": spec.in_bits, "out_bits": spec.out_bits, "max_transfer": spec.max_transfer,
        "pe": plan.pe, "simd": plan.simd, "word_bits": plan.word_bits,
        "ram_words": plan.ram_depth, "ram_bytes_per_word": per_word,
        "registers": ENGINE_REGS,
        "layers": [{"name": s.name, "index": i, "k": s.k, "n": s.n, "sf": s.sf, "nf": s.nf,
                    "beats": s.beats, "codec": s.codec} for i, s in enumerate(plan.layers)],
        "whole": None if whole is None else {
            "in_beats": whole.in_beats, "out_beats": whole.out_beats,
            "row_beats": whole.row_beats},
        "generated_by": f"vitfpga {__version__}",
    }


def _driver_model(source: DriverSource, layers: dict[str, IntLinear]) -> IntModel:
    """The integer model the driver loads: the trained one (validated again: the package must
    not ship what its runtime would refuse), the untrained whole model a whole-model design
    runs, or a preset's layers only."""
    if source.model_file is not None:
        return load_model(str(source.model_file))
    if source.int_model is not None:
        return source.int_model
    return IntModel(spec=source.spec, layers=dict(layers), params={}, scales={})


def _runtime_sources() -> list[tuple[str, bytes]]:
    import vitfpga.runtime

    root = Path(vitfpga.runtime.__file__).parent
    return [(f.name, f.read_bytes()) for f in sorted(root.glob("*.py"))]


def emit_pynq(spec: SystemSpec, plan: ModelPlan, layers: dict[str, IntLinear],
              source: DriverSource, out_dir: Path, whole: VitProgram | None = None
              ) -> list[Path]:
    """Write `out_dir/pynq/` (for the whole-model design when `whole` is its program); return
    the files written."""
    root = Path(out_dir) / "pynq"
    pkg = root / spec.design
    (pkg / "runtime").mkdir(parents=True, exist_ok=True)
    (pkg / "overlay").mkdir(exist_ok=True)
    written: list[Path] = []

    def put(path: Path, data: bytes | str) -> None:
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
        written.append(path)

    # The description is a Python literal in setup.py (repr): a model name is free text.
    context = {"design": spec.design, "model": source.model, "board": spec.board,
               "version": __version__, "data_files": list(PACKAGE_DATA),
               "description_literal": repr(f"PYNQ driver of the vitfpga engine for "
                                           f"{source.model} on {spec.board}")}
    put(root / SETUP_FILE, render("pynq/setup.py.j2", **context))
    put(root / "run_on_board.py", render("pynq/run_on_board.py.j2", **context))
    static = template_root() / "pynq" / "package"
    for name in ("__init__.py", "driver.py"):
        put(pkg / name, (static / name).read_bytes())
    for name, data in _runtime_sources():
        put(pkg / "runtime" / name, data)

    ram, per_word = ram_bytes(plan, layers)
    put(pkg / "weights_ram.bin", ram)
    hw = hw_description(spec, plan, per_word, whole)
    put(pkg / "hw.json", json.dumps(hw, indent=2) + "\n")
    put(pkg / "overlay" / "README.txt",
        f"`make bitstream` in the project directory puts {spec.design}.bit and "
        f"{spec.design}.hwh here (PYNQ needs both, with the same base name), and "
        f"{spec.design}.xsa (the hardware platform, which PYNQ 4's remote Overlay takes).\n")
    _driver_model(source, layers).save(str(pkg / "model.npz"))
    written.append(pkg / "model.npz")
    if source.images is not None and source.labels is not None:
        write_npz(root / "test_images.npz",
                  {"images": np.asarray(source.images, dtype=np.float32),
                   "labels": np.asarray(source.labels, dtype=np.int64)})
        written.append(root / "test_images.npz")
    return written
