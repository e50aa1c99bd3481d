"""Simulation models of the vendor primitives the emitted Verilog instantiates (never synthesised:
Yosys and Vivado use their own)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["XILINX_PRIMS"]

# LUT6_2 and CARRY8 (the UltraScale+ ternary adder, vitfpga_addtree.v vitfpga_add3) and RAM64X1D
# (a split LUT RAM lane's top bit, vitfpga_lane_ram.v STYLE 3).
XILINX_PRIMS = Path(__file__).with_name("xilinx_prims.v")
