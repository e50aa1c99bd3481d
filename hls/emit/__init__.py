"""Emitters: a plan -> files (HLS C++, Verilog, whole-model Verilog, Vivado TCL, PYNQ driver,
the project around them), rendered through the Jinja2 templates. Imports only runtime and plan."""
