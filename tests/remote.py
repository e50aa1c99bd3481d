"""The real PYNQ client against `vitfpga board-sim`, for tests.

The client is pynq 4.0 from PyPI in its own environment (`make setup` makes `.venv-pynq`: its
pins conflict with this one's), so client code runs as a subprocess with that interpreter and
`PYNQ_REMOTE_DEVICES` set, exactly as on a user's laptop; the board runs here, in-process.
Client scripts live in tests/pynq_clients/ and print one JSON object on their last line.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from vitfpga.sim.board_sim import BoardSim

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = Path(__file__).resolve().parent / "pynq_clients"
PYNQ_PYTHON_ENV = "VITFPGA_PYNQ_PYTHON"
CLIENT_TIMEOUT_S = 600


def pynq_python() -> Path:
    """The client interpreter (VITFPGA_PYNQ_PYTHON, default .venv-pynq/bin/python); skips the
    test, saying why, where it is missing."""
    path = Path(os.environ.get(PYNQ_PYTHON_ENV, ROOT / ".venv-pynq" / "bin" / "python"))
    if not path.is_file():
        pytest.skip(f"no PYNQ client interpreter at {path} (`make setup` makes .venv-pynq)")
    return path


def loopback() -> str:
    """A loopback address of this pytest worker's own (127.0.0.10 + worker number): the client
    always dials port 7967, so parallel boards differ by address."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return f"127.0.0.{10 + int(worker.removeprefix('gw') or 0)}"


@contextmanager
def board(project: Path, build: Path, sim: str = "verilator") -> Iterator[BoardSim]:
    """A board-sim server for `project` on this worker's loopback address."""
    with BoardSim(project, host=loopback(), sim=sim, build_dir=build,
                  overlay_dir=build / "overlay", log=lambda _: None) as server:
        yield server


def run_client(script: str, *args: object, host: str, env: dict[str, str] | None = None
               ) -> dict[str, Any]:
    """Run tests/pynq_clients/`script` under the real pynq with PYNQ_REMOTE_DEVICES=`host`;
    its last stdout line (JSON) is the result. A failing script fails the test with its
    output."""
    full_env = {**os.environ, "PYNQ_REMOTE_DEVICES": host, **(env or {})}
    full_env.pop("PYTHONPATH", None)  # nothing of this environment leaks into the client's
    proc = subprocess.run([str(pynq_python()), str(CLIENTS / script), *map(str, args)],
                          capture_output=True, text=True, env=full_env,
                          timeout=CLIENT_TIMEOUT_S)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
