"""One `vitfpga run --quick` shared by every end-to-end test that needs a trained run, across
pytest-xdist workers: the first worker to need it trains it, the others wait for it (a lock)
instead of training their own. Tests only read the run directory.

The run caps its whole-model search at 64 lanes ([hardware] whole_max_lanes): the design is the
same RTL at a smaller folding and simulates in a fraction of the time of the 256-lane default,
which `vitfpga run` keeps (its figures are the benchmarks' and the README's)."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import session_dir

E2E_WHOLE_LANES = 64


def _train(out: Path) -> None:
    config = out.parent / "quick.toml"
    config.write_text(f"[hardware]\nwhole_max_lanes = {E2E_WHOLE_LANES}\n")
    # A relative --out, run from its parent, as `make demo` does: the simulators work in their
    # own directories, so every path handed to them must survive that.
    proc = subprocess.run([sys.executable, "-m", "vitfpga.cli", "run", "--quick", "--config",
                           config.name, "--out", out.name], cwd=out.parent,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = session_dir(tmp_path_factory, "e2e")
    out, done = root / "run", root / "run.done"
    with open(root / "run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held while one worker trains; released on close
        if not done.exists():
            if out.exists():
                pytest.fail(f"the quick run failed in another worker (see its report); {out} "
                            f"is what it left")
            _train(out)
            done.touch()
    return out
