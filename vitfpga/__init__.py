"""vitfpga: compress a Vision Transformer until all of its weights fit on chip, then generate and
verify the FPGA engine that runs it.

`vitfpga.compile(model, data, board=..., recipe=...)` is the Python API (vitfpga.api); it is
imported on first use, so `import vitfpga` (and the CLI's start) stays light."""

from __future__ import annotations

from typing import Any

__all__ = ["Result", "__version__", "compile"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("compile", "Result"):
        from vitfpga import api

        return getattr(api, name)
    raise AttributeError(f"module 'vitfpga' has no attribute {name!r}")
