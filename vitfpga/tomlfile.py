"""Reading the user's TOML files (run configs, boards): one-line errors, checked value types."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, get_args, get_origin

from vitfpga.errors import BadInput

__all__ = ["read_toml", "typed_value"]


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """Parse `path`; a missing file or a syntax error (with line and column) is BadInput."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BadInput(f"{what} {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{what} {path}: syntax error: {e}") from None


def typed_value(key: str, value: Any, typ: Any) -> Any:
    """`value` as type `typ` (int is not bool, an int is a valid float, tuple[X, ...] comes from
    a TOML list of X), or BadInput naming the key."""
    if get_origin(typ) is tuple:
        item = get_args(typ)[0]
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            raise BadInput(f"key '{key}' must be a list of {item.__name__}s")
        return tuple(value)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise BadInput(f"key '{key}' must be {typ.__name__}, got {type(value).__name__} "
                       f"{value!r}")
    return value
