"""One `vitfpga run --quick` shared by every end-to-end test that needs a trained run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the quick run goes to one worker (`--dist loadgroup`): each worker
    that needs it trains its own (minutes), and the other worker has plenty else to run."""
    for item in items:
        if "quick_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("quick_run"))


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A relative --out, run from its parent, as `make demo` does: the simulators work in their
    # own directories, so every path handed to them must survive that.
    out = tmp_path_factory.mktemp("e2e") / "run"
    proc = subprocess.run([sys.executable, "-m", "vitfpga.cli", "run", "--quick", "--out",
                           out.name], cwd=out.parent, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out
