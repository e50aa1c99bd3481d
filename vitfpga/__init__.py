"""vitfpga: compress a Vision Transformer until all of its weights fit on chip, then generate and
verify the FPGA engine that runs it."""

__all__ = ["__version__"]
__version__ = "0.1.0"
