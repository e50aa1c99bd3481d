"""The one Jinja2 environment every generator renders through.

Templates hold structure; Python computes every number they show. `StrictUndefined` turns a
missing value into an error, not an empty string, and values reach generated code only through
the filters below.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import jinja2

from vitfpga.hls.plan.names import identifier

__all__ = ["copy_static", "hexword", "render", "template_root", "write_mem"]


def template_root() -> Path:
    return Path(str(resources.files("vitfpga.templates")))


def hexword(value: int, bits: int) -> str:
    """Unsigned hex of exactly ceil(bits/4) digits, the `$readmemh` word format."""
    if value < 0 or value >> bits:
        raise ValueError(f"{value} does not fit {bits} bits")
    return format(value, f"0{(bits + 3) // 4}x")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_root())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["ident"] = identifier
    env.filters["hexword"] = hexword
    return env


_ENV: jinja2.Environment | None = None


def render(template: str, **context: object) -> str:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV.get_template(template).render(**context)


def write_mem(path: Path, words: list[int], bits: int) -> None:
    """A `$readmemh` file: one word a line, address 0 first."""
    path.write_text("".join(hexword(w, bits) + "\n" for w in words))


def copy_static(subdir: str, dest: Path) -> list[Path]:
    """Copy hand-written kernel sources (not templates) from templates/<subdir> into dest."""
    src = template_root() / subdir
    written = []
    for f in sorted(src.rglob("*")):
        if f.is_file() and f.suffix != ".j2":
            target = dest / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.read_bytes())
            written.append(target)
    return written
