"""Output directories that appear whole or not at all: build in a hidden sibling, then rename."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vitfpga.errors import BadInput

__all__ = ["atomic_output_dir", "check_output_dir"]


def check_output_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BadInput(f"--out {out} exists and is not empty; pass --force to replace it")


@contextmanager
def atomic_output_dir(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary directory next to `out`; on success it replaces `out`, on any error or
    interrupt it is removed and `out` is left as it was."""
    check_output_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    trash = None
    if out.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        out.rename(trash / "old")
    tmp.chmod(0o755)
    tmp.rename(out)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
