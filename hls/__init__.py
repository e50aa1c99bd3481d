"""Planner and code generators: integer model + board -> engine plan -> HLS C++ and Verilog."""
