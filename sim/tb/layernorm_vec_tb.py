"""cocotb testbench for `vitfpga_layernorm_vec`, driven by `tests/sim/test_layernorm_vec_unit.py`
through `vitfpga.sim.unit.run_unit`.

The case format, the checks made here (the output hold rule, one `done` pulse a run, `idle`) and
the result format are `layernorm_tb`'s; its bench packs L elements into a beat (element j at bits
[16j +: 16] in, [8j +: 8] out, L read from out_data's width), so a run's "x" and "y" stay lists
of elements, row-major.
"""

from __future__ import annotations

from typing import Any

import cocotb

from vitfpga.sim.tb.layernorm_tb import play_case


@cocotb.test()
async def layernorm_vec_runs(dut: Any) -> None:
    """Play every run of the case back to back and write what was seen."""
    await play_case(dut)
