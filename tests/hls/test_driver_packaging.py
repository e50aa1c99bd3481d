"""The driver package installs on every PYNQ image (issue 21): PYNQ 2.7 has setuptools 44 and
PYNQ 3.0 setuptools 59, which predate pyproject.toml [project] tables (pip then builds an empty
package named UNKNOWN, silently), so the package is a plain setup.py that setuptools 44 reads.

The install is tried for real with setuptools 44.1.1 (it runs on this Python) in a fresh venv,
the way `make deploy` installs on the board: `pip install --no-build-isolation --no-deps`."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import digits_like
from vitfpga.hls.emit.pynq import PACKAGE_DATA, SETUP_FILE, DriverSource, emit_pynq
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, plan_model
from vitfpga.hls.plan.system import SystemSpec, system_spec
from vitfpga.quant.model import PRESETS

OLDEST_SETUPTOOLS = "44.1.1"  # PYNQ 2.7's
WHEEL = "0.37.1"  # a `wheel` of its time (0.38+ needs a newer setuptools for bdist_wheel)
# setup() keywords setuptools 44 knows (distutils' and setuptools' own, as of 44.1).
SETUPTOOLS_44_KEYWORDS = {
    "name", "version", "description", "long_description", "long_description_content_type",
    "author", "author_email", "url", "license", "classifiers", "keywords", "platforms",
    "python_requires", "install_requires", "extras_require", "packages", "package_dir",
    "package_data", "include_package_data", "exclude_package_data", "py_modules",
    "entry_points", "zip_safe", "data_files", "scripts", "project_urls",
}


@cache
def _system() -> tuple[ModelPlan, SystemSpec, dict]:
    layers, rows = digits_like(blocks=2)
    plan = plan_model(layers, rows, get_board("pynq-z2"))
    return plan, system_spec(plan, get_board("pynq-z2"), 'digits "tiny"'), layers


def _package(out: Path, bitstream: bool = True) -> Path:
    """pynq/ of a project, with a bitstream, .hwh and .xsa as `make bitstream` leaves them."""
    plan, spec, layers = _system()
    emit_pynq(spec, plan, layers, DriverSource(model='digits "tiny"', spec=PRESETS["vit-digits"]),
              out)
    if bitstream:
        for ext in ("bit", "hwh", "xsa"):
            (out / "pynq" / spec.design / "overlay" / f"{spec.design}.{ext}").write_bytes(b"x")
    return out / "pynq"


def test_setup_py_uses_only_what_setuptools_44_knows(tmp_path: Path) -> None:
    root = _package(tmp_path)
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == \
        ["run_on_board.py", SETUP_FILE]  # no pyproject.toml that could shadow setup.py
    text = (root / SETUP_FILE).read_text()
    tree = ast.parse(text, feature_version=(3, 8))  # PYNQ 2.7's Python
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [(n.module, [a.name for a in n.names]) for n in imports] == [("setuptools", ["setup"])]
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert set(keywords) <= SETUPTOOLS_44_KEYWORDS, set(keywords) - SETUPTOOLS_44_KEYWORDS
    design = _system()[1].design
    assert keywords["name"] == design and keywords["python_requires"] == ">=3.8"
    assert keywords["packages"] == [design, f"{design}.runtime"]
    assert keywords["package_data"] == {design: list(PACKAGE_DATA)}
    assert keywords["description"].endswith('digits "tiny" on pynq-z2')  # quoted, not broken
    # Deterministic: the same inputs give the same file.
    assert (_package(tmp_path / "again") / SETUP_FILE).read_text() == text


@pytest.fixture(scope="module")
def old_setuptools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with setuptools 44.1.1 and a wheel of its time, as on PYNQ 2.7."""
    venv = tmp_path_factory.mktemp("st44") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    got = subprocess.run([str(python), "-m", "pip", "install", "-q",
                          f"setuptools=={OLDEST_SETUPTOOLS}", f"wheel=={WHEEL}"],
                         capture_output=True, text=True, timeout=180)
    if got.returncode != 0:
        pytest.skip(f"cannot install setuptools {OLDEST_SETUPTOOLS} from the package index: "
                    f"{got.stderr.strip()[-300:]}")
    version = subprocess.run(
        [str(python), "-c", "import setuptools; print(setuptools.__version__)"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert version == OLDEST_SETUPTOOLS
    return python


def _install(python: Path, package: Path, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-m", "pip", "install", "--no-build-isolation",
                           "--no-deps", "--no-index", "--target", str(target), str(package)],
                          capture_output=True, text=True, timeout=180)


def test_the_package_installs_with_setuptools_44(old_setuptools: Path, tmp_path: Path) -> None:
    root = _package(tmp_path / "project")
    site = tmp_path / "site"
    proc = _install(old_setuptools, root, site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    design = _system()[1].design
    assert [p.name for p in site.glob("*.dist-info")] == [f"{design}-0.1.0.dist-info"]
    assert not list(site.glob("UNKNOWN*"))
    for rel in ("__init__.py", "driver.py", "hw.json", "model.npz", "weights_ram.bin",
                "runtime/__init__.py", "runtime/forward.py", "runtime/intmath.py",
                f"overlay/{design}.bit", f"overlay/{design}.hwh", f"overlay/{design}.xsa",
                "overlay/README.txt"):
        assert (site / design / rel).is_file(), rel


def test_a_project_table_alone_installs_nothing_with_setuptools_44(old_setuptools: Path,
                                                                    tmp_path: Path) -> None:
    """Why setup.py: the same package described by a [project] table only (what vitfpga
    generated before) installs as UNKNOWN without the driver, and pip says nothing."""
    root = _package(tmp_path / "project", bitstream=False)
    design = _system()[1].design
    (root / SETUP_FILE).unlink()
    (root / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"'
        f'\n\n[project]\nname = "{design}"\nversion = "0.1.0"\n\n[tool.setuptools]\n'
        f'packages = ["{design}", "{design}.runtime"]\n')
    site = tmp_path / "site"
    proc = _install(old_setuptools, root, site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (site / design).exists()
    assert [p.name for p in site.glob("*.dist-info")] == ["UNKNOWN-0.0.0.dist-info"]


def test_the_driver_states_and_checks_the_pynq_releases_it_supports(tmp_path: Path,
                                                                    monkeypatch) -> None:
    """2.7, 3.0/3.1 and 4.0 are taken, older ones refused in one line, newer ones warned of."""
    import importlib
    from types import SimpleNamespace

    root = _package(tmp_path, bitstream=False)
    design = _system()[1].design
    monkeypatch.syspath_prepend(str(root))
    driver = importlib.import_module(f"{design}.driver")
    try:
        assert driver.SUPPORTED_PYNQ == ("2.7", "3.0", "3.1", "4.0")
        for version in ("2.7.0", "3.0.1", "3.1", "4.0.0"):
            assert driver.check_pynq(SimpleNamespace(__version__=version)) == version
        with pytest.raises(driver.EngineError, match=r"pynq 2\.5\.1 is too old.*2\.7, 3\.0"):
            driver.check_pynq(SimpleNamespace(__version__="2.5.1"))
        with pytest.warns(UserWarning, match=r"pynq 5\.0 is newer"):
            driver.check_pynq(SimpleNamespace(__version__="5.0"))
    finally:
        for key in [k for k in sys.modules if k == design or k.startswith(design + ".")]:
            del sys.modules[key]
