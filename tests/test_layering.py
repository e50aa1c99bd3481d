"""The layering of docs/design.md, held by parsing every import (lazy ones inside functions
too): data flows runtime -> quant | plan -> emit -> sim -> app, and no arrow points back up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Folder in the repository -> (its layer, the vitfpga layers it may import).
LAYERS = {
    "runtime": ("runtime", set()),
    "quant": ("quant", {"runtime"}),
    "hls/plan": ("plan", {"runtime"}),
    "hls/emit": ("emit", {"runtime", "plan"}),
    "sim": ("sim", {"runtime", "plan", "emit"}),
    "vitfpga": ("app", {"runtime", "quant", "plan", "emit", "sim", "app"}),
}
# Shared vocabulary every layer may use: the errors, the IR re-export, the TOML reader, the
# package version.
SHARED = {"vitfpga", "vitfpga.errors", "vitfpga.ir", "vitfpga.tomlfile"}
# Third-party packages a layer must not need: the board's runtime has numpy only, planning
# runs without torch.
FORBIDDEN = {"runtime": {"torch", "brevitas", "sklearn", "jinja2", "cocotb", "click", "rich"},
             "plan": {"torch", "brevitas", "sklearn", "cocotb"},
             "emit": {"torch", "brevitas", "sklearn", "cocotb"}}


def layer_of(module: str) -> str | None:
    """The layer of a `vitfpga.*` module name (None for shared vocabulary)."""
    if module in SHARED or any(module.startswith(s + ".") for s in SHARED - {"vitfpga"}):
        return None
    parts = module.split(".")[1:]
    if parts[:1] == ["runtime"]:
        return "runtime"
    if parts[:1] == ["quant"]:
        return "quant"
    if parts[:2] == ["hls", "plan"]:
        return "plan"
    if parts[:2] == ["hls", "emit"]:
        return "emit"
    if parts[:1] == ["sim"]:
        return "sim"
    return "app"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file; relative imports of the runtime
    resolve inside the runtime."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                continue  # relative: stays inside its own package
            out.append((node.lineno, node.module or ""))
    return out


def sources() -> list[tuple[str, Path]]:
    """(folder, file) of every Python file of every layer (no layer folder nests another)."""
    return [(folder, path) for folder in LAYERS for path in sorted((ROOT / folder).rglob("*.py"))]


def test_every_layer_has_sources() -> None:
    folders = {folder for folder, _ in sources()}
    assert folders == set(LAYERS)


@pytest.mark.parametrize("folder", list(LAYERS))
def test_imports_point_down_the_layers(folder: str) -> None:
    layer, allowed = LAYERS[folder]
    bad = []
    for _, path in [s for s in sources() if s[0] == folder]:
        for line, module in imports(path):
            top = module.split(".")[0]
            if top == "vitfpga":
                target = layer_of(module)
                if target is not None and target != layer and target not in allowed:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {module} ({target})")
            elif top in FORBIDDEN.get(layer, set()):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, f"{layer} may import only {sorted(allowed) or 'nothing of vitfpga'}:\n" + \
        "\n".join(bad)


def test_the_checker_sees_a_wrong_arrow(tmp_path: Path) -> None:
    """The parser finds lazy imports inside functions, and the layer map names them."""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from vitfpga.quant.model import ViT\n    import torch\n")
    assert imports(path) == [(2, "vitfpga.quant.model"), (3, "torch")]
    assert layer_of("vitfpga.quant.model") == "quant"
    assert layer_of("vitfpga.hls.plan.engine") == "plan"
    assert layer_of("vitfpga.hls.emit.rtl") == "emit"
    assert layer_of("vitfpga.errors") is None
    assert layer_of("vitfpga.pipeline") == "app"
