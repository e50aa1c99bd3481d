"""Run images through the whole-model RTL (docs/vit.md) under cocotb, as a board's DMA would:
`rows` = images, patch beats in on s_axis, logits out on m_axis until TLAST, `cycles` read back.

The bench is the engine's (`vitfpga.sim.tb.engine_tb`, its bus operations): the whole-model
top has the engine's ports and register map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitfpga.errors import VerificationFailed
from vitfpga.hls.emit.vit import VIT_CODEBOOK, VIT_FILES, VIT_TOP, VIT_TOP_FILE
from vitfpga.hls.plan.engine import ModelPlan
from vitfpga.hls.plan.program import VitProgram
from vitfpga.runtime.forward import quantise_images
from vitfpga.runtime.model import IntModel
from vitfpga.sim.rtl import Design, SimProcess, load_ram_weights

__all__ = ["VIT_DESIGN", "VitRun", "input_beats", "run_vit"]

VIT_DESIGN = Design(VIT_TOP, VIT_TOP_FILE, tuple(VIT_FILES.values()),
                    tuple(VIT_CODEBOOK.values()))
REG_CTRL, REG_ROWS, REG_CYCLES = 0x00, 0x10, 0x18
AP_DONE = 0x2
# A hang is an error, not a stuck test: a pass may take this many times its ideal cycles.
HANG_FACTOR, HANG_SLACK = 4, 20_000


@dataclass(frozen=True)
class VitRun:
    logits: np.ndarray  # (images, classes) int64
    cycles: int  # the `cycles` register: start to done of the whole batch
    images: int
    in_beats: int
    out_beats: int

    @property
    def cycles_per_image(self) -> float:
        return self.cycles / self.images


def _pack(values: np.ndarray) -> int:
    word = 0
    for i, v in enumerate(values.tolist()):
        word |= (int(v) & 0xFF) << (8 * i)
    return word


def input_beats(patches: np.ndarray, sf: int, simd: int) -> list[int]:
    """(B, P, K) int8 patch values -> the input stream: each row zero-padded to sf*SIMD lanes,
    SIMD lanes a beat, lane 0 in the low byte."""
    b, p, k = patches.shape
    padded = np.zeros((b, p, sf * simd), dtype=np.int64)
    padded[:, :, :k] = patches
    return [_pack(row[i * simd:(i + 1) * simd]) for row in padded.reshape(b * p, -1)
            for i in range(sf)]


def _lanes(beat: int, lanes: int) -> list[int]:
    return [((beat >> (8 * i)) & 0xFF) - (256 if (beat >> (8 * i + 7)) & 1 else 0)
            for i in range(lanes)]


def run_vit(rtl_dir: Path, prog: VitProgram, plan: ModelPlan, model: IntModel, images: object,
            sim: str, build_dir: Path, *, load: bool = True) -> VitRun:
    """Classify `images` (B, C, H, W floats) on the whole-model RTL in `rtl_dir`, first
    loading the weights the plan keeps in the start-up-loaded RAM (`load` False skips that: a
    test that the RAM is really read)."""
    q = quantise_images(images, model.spec.patch_size, model.input_scale())
    count = q.shape[0]
    beats = input_beats(q, prog.row_beats, plan.simd)
    classes = model.spec.num_classes
    with SimProcess(rtl_dir, sim, build_dir, {"board": True}, VIT_DESIGN) as proc:
        if load and plan.ram_depth:  # URAM powers up empty: the driver's first job
            load_ram_weights(proc, rtl_dir, plan, sim)
        proc.request({"op": "write", "addr": REG_ROWS, "data": count})
        proc.request({"op": "recv", "max_beats": count * prog.out_beats})
        proc.request({"op": "send", "beats": beats})
        proc.request({"op": "write", "addr": REG_CTRL, "data": 1})
        got = proc.request({"op": "wait", "channel": "s2mm",
                            "max_cycles": (HANG_FACTOR * prog.bound_cycles() + HANG_SLACK)
                                          * count})
        if not got["done"] or got["overflow"]:
            raise proc.failure(f"the whole-model run did not deliver {count} images' logits "
                               f"(moved {got['moved']} beats, overflow {got['overflow']})")
        sent = proc.request({"op": "wait", "channel": "mm2s", "max_cycles": 0})
        if not sent["done"]:
            raise proc.failure("the whole-model run left input beats unread")
        for _ in range(100):  # the last op drains a few clocks after the final beat
            if proc.request({"op": "read", "addr": REG_CTRL})["data"] & AP_DONE:
                break
        else:
            raise proc.failure("the whole-model run never signalled ap_done")
        cycles = proc.request({"op": "read", "addr": REG_CYCLES})["data"]
    out = got["beats"]
    if len(out) != count * prog.out_beats:
        raise VerificationFailed(f"{sim}: {len(out)} output beats, expected "
                                 f"{count * prog.out_beats}")
    values = [v for beat in out for v in _lanes(beat, plan.pe)]
    logits = np.asarray(values, dtype=np.int64).reshape(count, -1)[:, :classes]
    return VitRun(logits=logits, cycles=int(cycles), images=count, in_beats=len(beats),
                  out_beats=len(out))
