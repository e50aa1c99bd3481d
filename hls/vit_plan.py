"""What the whole-model design costs and moves, beside the host-offload engine it contains
(docs/vit.md): cycles, PS-PL traffic, images/s at the board clock, and a resource estimate."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from vitfpga.hls.memory import map_memory
from vitfpga.hls.plan import ModelPlan, estimate_resources
from vitfpga.hls.vit_program import VitProgram

__all__ = ["WholeModelPlan", "plan_whole_model"]

# DSP slices of the fixed units (from the RTL: the LayerNorm unit's products and divider-free
# requantisation, the softmax's rescale and normalisation), and of one residual-add lane
# (an 8x31 and a 16x31 product).
_LN_DSP, _SOFTMAX_DSP, _ADD_LANE_DSP = 8, 6, 3


@dataclass(frozen=True)
class WholeModelPlan:
    board: str
    clock_mhz: float
    ideal_cycles_per_image: int  # the sum of the per-op ideal cycle counts
    ideal_by_unit: dict[str, int]
    ps_pl_bytes_per_image: int  # patches in + logits out
    host_offload_ps_pl_bytes_per_image: int  # every linear layer's rows in and out
    host_offload_engine_cycles_per_image: int  # the engine's ideal alone (host ops not counted)
    activation_bram36: float  # XM, BM, operand buffer, unit row buffers
    bram36: float  # engine + activations
    uram: int
    dsp: int
    fits: bool
    why: str

    @property
    def ideal_images_per_s(self) -> float:
        return self.clock_mhz * 1e6 / self.ideal_cycles_per_image

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "ideal_images_per_s": round(self.ideal_images_per_s, 1)}


def _bram(width: int, depth: int) -> float:
    return map_memory(width, max(depth, 1)).bram36


def plan_whole_model(plan: ModelPlan, prog: VitProgram, board_bram36: float, board_dsp: int
                     ) -> WholeModelPlan:
    lanes = prog.lanes
    xm_half = math.ceil((math.ceil(prog.xm_depth / lanes) + 1) / 2)
    bm_half = math.ceil((math.ceil(prog.bm_depth / lanes) + 1) / 2)
    act = (2 * _bram(lanes * 16, xm_half) + 2 * _bram(lanes * 8, bm_half)
           + _bram(plan.pe * plan.simd * 8, prog.op_depth)
           + 3 * _bram(16, prog.dim) + 3 * _bram(32, prog.tokens))
    # With a streamed operand every lane multiplies int8 x int8 on a DSP, whatever the weight
    # bits (docs/engine.md): the engine costs what an 8-bit engine does.
    engine_dsp, _ = estimate_resources(plan.pe, plan.simd, 8)
    dsp = engine_dsp + _LN_DSP + _SOFTMAX_DSP + _ADD_LANE_DSP * plan.pe
    bram = plan.bram36 + act
    in_bytes = prog.in_beats * plan.simd
    out_bytes = prog.out_beats * plan.pe
    offload = sum(s.rows * (s.sf * plan.simd + s.nf * plan.pe) for s in plan.layers)
    fits = bram <= board_bram36 and dsp <= board_dsp
    why = (f"{bram:.1f} of {board_bram36:.1f} BRAM36, {dsp} of {board_dsp} DSP")
    ideal = prog.ideal_cycles()
    return WholeModelPlan(
        board=plan.board, clock_mhz=plan.clock_mhz, ideal_cycles_per_image=sum(ideal.values()),
        ideal_by_unit=ideal, ps_pl_bytes_per_image=in_bytes + out_bytes,
        host_offload_ps_pl_bytes_per_image=offload,
        host_offload_engine_cycles_per_image=plan.cycles_per_image,
        activation_bram36=round(act, 1), bram36=round(bram, 1), uram=plan.uram, dsp=dsp,
        fits=fits, why=why)
