"""Verification: g++ C-simulation, cocotb RTL simulation, Yosys estimates."""
