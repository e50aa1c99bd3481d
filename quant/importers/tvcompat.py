"""Import torchvision (and timm, which imports it) where its compiled ops cannot load.

A torchvision wheel built for another torch (here: the CUDA 0.28 build next to a CPU-only torch)
cannot register its C++ operators, and `import torchvision` then fails while registering fake
(meta) kernels for them: "operator torchvision::nms does not exist". Vision Transformers use none
of those operators (nms, roi_align, deform_conv2d, ...), so for the import only, registering a fake
kernel for a `torchvision::` operator that does not exist is skipped. A plain import is tried
first: with a torchvision that matches its torch, nothing is patched.

Everything in vitfpga that imports timm or torchvision goes through `import_torchvision` /
`import_timm`.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import torch

__all__ = ["import_timm", "import_torchvision"]

_MISSING_OP = "torchvision::"


def _is_missing_op_error(exc: BaseException) -> bool:
    text = str(exc)
    return _MISSING_OP in text and "does not exist" in text


def _op_exists(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(name, "")
    except RuntimeError:
        return False
    return True


@contextlib.contextmanager
def _skip_missing_torchvision_fakes() -> Iterator[None]:
    original = torch.library.register_fake

    def register_fake(op: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(op, str) and op.startswith(_MISSING_OP) and not _op_exists(op):
            def keep(fn: Callable[..., Any] | None = None) -> Any:
                return fn
            # `register_fake(name)` is used as a decorator; with a function it registers at once.
            func = kwargs.get("func", args[0] if args else None)
            return keep(func) if callable(func) else keep
        return original(op, *args, **kwargs)

    torch.library.register_fake = register_fake
    try:
        yield
    finally:
        torch.library.register_fake = original


def _purge(package: str) -> None:
    """Drop the partial modules a failed import left behind, so the retry starts clean."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def import_torchvision() -> ModuleType:
    """The torchvision module; patched as the module docstring says only where a plain import
    fails because its compiled operators are missing."""
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as exc:
        if not _is_missing_op_error(exc):
            raise
    _purge("torchvision")
    with _skip_missing_torchvision_fakes():
        return importlib.import_module("torchvision")


def import_timm() -> ModuleType:
    """The timm module (it imports torchvision, so torchvision goes through the shim first)."""
    if "timm" in sys.modules:
        return sys.modules["timm"]
    import_torchvision()
    return importlib.import_module("timm")
