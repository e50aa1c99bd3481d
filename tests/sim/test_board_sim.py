"""`vitfpga board-sim` against the real pynq 4.0 client (PYNQ.remote, its own environment): the
protocol pynq's own self-test checks, the simulated AXI DMA under misuse (PG021), refused
bitstreams and projects. The board runs the emitted RTL of a small engine (PE=4, SIMD=8, one
layer's weights in the ROM, the rest in the start-up-loaded RAM) on Verilator.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests import remote
from tests.sim.test_overlay import PE, SIMD, design
from vitfpga.errors import BadInput
from vitfpga.hls.emit.pynq import ram_bytes
from vitfpga.hls.emit.rtl import emit_rtl
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan
from vitfpga.hls.plan.system import DMA_LENGTH_BITS, system_spec
from vitfpga.sim.axi_dma import ERR_IRQ, HALTED, IDLE, INT_ERR, IOC_IRQ
from vitfpga.sim.bitfile import bin_fingerprint, rtl_fingerprint, simulated_bit
from vitfpga.sim.board import Board
from vitfpga.sim.board_sim import BoardSim

pytestmark = pytest.mark.verilator

# test_overlay's design (PE=4, SIMD=8, two dense layers and a 2:4 one, layer 0 in the ROM):
# the same RTL, so the session builds it once (content-keyed cache).


@dataclass(frozen=True)
class Project:
    dir: Path
    build: Path
    plan: ModelPlan
    ram_words: int
    word_bytes: int


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("board_sim")
    layers, plan = design("kv260")
    board = get_board("kv260")
    assert plan.ram_depth > 0
    emit_rtl(plan, layers, root / "project")
    spec = system_spec(plan, board, "board sim test")
    (root / "project" / "system.json").write_text(spec.to_json())
    _, per_word = ram_bytes(plan, layers)
    return Project(root / "project", root / "build", plan, plan.ram_depth, per_word)


@pytest.fixture(scope="module")
def served(project: Project) -> Iterator[BoardSim]:
    """One board for the module (one simulation build); every test downloads its own overlay,
    which restarts the simulation, so no test sees another's state."""
    with remote.board(project.dir, project.build) as server:
        yield server


def _selftest(host: str, bit: Path) -> str:
    proc = subprocess.run([str(remote.pynq_python()), "-m", "pynq.remote.selftest", "--ip", host,
                           "--port", "7967", "--bitstream", str(bit)], capture_output=True,
                          text=True, timeout=remote.CLIENT_TIMEOUT_S,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(bit.parent)})
    return proc.stdout + proc.stderr


def test_pynq_selftest_passes(project: Project, served: BoardSim) -> None:
    """pynq's own host-side self-test, every step that applies to a board without RF parts."""
    out = _selftest(served.host, served.bit)
    assert served.board.programmed == served.board.spec.design
    # the overlay asked for the design's PL clock; PYNQ set it through the PS registers
    # (IOPLL / 6 from the 33.333 MHz reference: 249.997 MHz for 250)
    assert served.board.ps.pl_clock_mhz(0) == pytest.approx(project.plan.clock_mhz, rel=1e-4)
    for step in ("TCP", "gRPC channel ready", "connected; arch=aarch64, board=kv260",
                 "byte file survived the round-trip", "buffer intact",
                 "programmed the PL", "leds@0xa0020000: wrote 0x5, read 0x5"):
        assert any(step in line and "[PASS]" in line for line in out.splitlines()), out
    assert "0 failed, 0 skipped" in out, out


def test_dma_misuse_behaves_as_pg021_says(project: Project, served: BoardSim) -> None:
    plan = project.plan
    row_bytes = plan.layers[0].beats * SIMD
    out_bytes = plan.layers[0].nf * PE
    r = remote.run_client("dma_misuse.py", served.bit, "axi_dma_0", "vitfpga_engine_0",
                          project.ram_words, project.word_bytes, row_bytes, out_bytes,
                          host=served.host)
    assert r["dma_driver"] == "pynq.lib.dma.DMA" and r["max_size"] == 2**DMA_LENGTH_BITS - 1
    assert r["after_start"] == 0  # running, not yet idle (PG021: Idle is 0 until a transfer)
    # pynq's driver refuses both before writing a register
    assert r["pynq_unaligned"].startswith("RuntimeError: DMA does not support unaligned")
    assert r["pynq_too_long"].startswith("ValueError: Transfer size is 67108864 bytes")
    # LENGTH keeps c_sg_length_width bits: 2**26 is 0 there, and 0 starts nothing
    assert r["length_over_width"] == {"length": 0, "status": 0}
    # an unaligned address without DRE: internal error, the channel halts, RS drops
    assert r["unaligned"]["status"] == INT_ERR | ERR_IRQ | HALTED
    assert r["unaligned"]["control"] & 0x1 == 0 and r["unaligned"]["error"] is True
    # halted by the error, so pynq's wait() finds the channel stopped
    assert r["unaligned"]["wait"] == "RuntimeError: DMA channel not started"
    assert r["halted_length"] == INT_ERR | ERR_IRQ | HALTED  # halted: LENGTH has no effect
    assert r["after_reset"] == [HALTED, HALTED]  # a soft reset clears errors, both halted
    # after the reset a real transfer goes through: the weight load, every byte
    assert r["load_after_reset"] == project.ram_words * project.word_bytes
    assert r["load_status"] == IDLE | IOC_IRQ
    # start while busy: pynq refuses; behind its back the DMA flags an internal error
    assert r["busy_status"] == 0
    assert r["pynq_busy"] == "RuntimeError: DMA channel not idle"
    assert r["busy_restart"]["status"] == INT_ERR | ERR_IRQ | HALTED
    assert r["busy_restart"]["wait"] == "RuntimeError: DMA channel not started"
    # a packet longer than the S2MM buffer: an internal error halts the channel (here before
    # pynq's wait() first looks); LENGTH says what was written
    assert r["overflow"]["wait"] == "RuntimeError: DMA channel not started"
    assert r["overflow"]["status"] & (INT_ERR | HALTED) == INT_ERR | HALTED
    assert r["overflow"]["length"] == out_bytes // 2


def test_foreign_bitstreams_are_refused(served: BoardSim, tmp_path: Path) -> None:
    """A .bit of other RTL does not program the board: the failed configuration leaves the PL
    unprogrammed (not running the previous design), and nothing answers at its addresses."""
    assert remote.run_client("download.py", served.bit, host=served.host)["ok"]
    assert served.board.programmed == served.board.spec.design
    # another name: pynq's remote client never re-sends a .bin the board already holds by name
    other = tmp_path / "other.bit"
    other.write_bytes(simulated_bit(served.board.spec.design, "xck26", "0" * 64))
    (tmp_path / "other.hwh").write_bytes(served.hwh.read_bytes())
    out = _selftest(served.host, other)
    assert served.board.programmed is None
    assert "built from other RTL" in out and "[FAIL] overlay download failed" in out, out
    assert "[FAIL] overlay not loaded" in out, out  # so no MMIO step could run


def test_the_simulated_bitstream_round_trips(project: Project) -> None:
    """.bit -> .bin as pynq converts it (32-bit words byte-swapped) -> design and fingerprint."""
    fingerprint = rtl_fingerprint(project.dir / "rtl")
    bit = simulated_bit("vitfpga_x", "xck26-sfvc784-2LV-c", fingerprint)
    assert bit == simulated_bit("vitfpga_x", "xck26-sfvc784-2LV-c", fingerprint)
    data = bit[bit.index(b"e\x00") + 5:]
    swapped = b"".join(data[i:i + 4][::-1] for i in range(0, len(data), 4))
    assert bin_fingerprint(swapped) == ("vitfpga_x", fingerprint)
    assert bin_fingerprint(data) is None  # not swapped: not a .bin
    assert bin_fingerprint(b"\x00" * 64) is None


def test_zynq7000_projects_are_refused(tmp_path: Path, project: Project) -> None:
    """PYNQ 4.0 dropped Zynq-7000: one clear line, not a board pynq cannot drive."""
    spec = system_spec(project.plan, get_board("kv260"), "z2")
    z2 = replace(spec, board="pynq-z2", part="xc7z020clg400-1", ps="zynq7")
    (tmp_path / "system.json").write_text(z2.to_json())
    with pytest.raises(BadInput, match=r"Zynq-7000 board, which PYNQ 4\.0"):
        Board(tmp_path, "verilator", tmp_path / "build", 100)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_cli_serves_until_interrupted(project: Project, stop: signal.Signals) -> None:
    """`vitfpga board-sim` as a user runs it: it says where it serves and what to set, the
    client connects, Ctrl-C (or a service manager's SIGTERM) stops it cleanly."""
    host = remote.loopback()
    # -X faulthandler: if it ever hangs, SIGABRT below prints every thread's stack.
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "vitfpga.cli",
                             "board-sim", str(project.dir), "--host", host],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        assert f"serving PYNQ.remote on {host}:7967" in lines[1], lines
        assert f"export PYNQ_REMOTE_DEVICES={host}" in lines[2], lines
        out = subprocess.run([str(remote.pynq_python()), "-c", (
            "from pynq.pl_server.remote_device import RemoteDevice;"
            f"d = RemoteDevice(0, {host!r}); print(d.name, d.arch)")],
            capture_output=True, text=True, timeout=120).stdout
        assert out.strip() == "kv260 aarch64"
    finally:
        proc.send_signal(stop)
        try:
            rest = proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            pytest.fail(f"board-sim did not stop within 60 s of {stop.name}; its threads:\n"
                        f"{proc.communicate(timeout=30)[0][-6000:]}")
    assert proc.returncode == 0, rest
    assert f"board-sim: stopped ({stop.name})" in rest and "Traceback" not in rest, rest


def test_cli_refuses_a_non_project(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vitfpga.cli", "board-sim", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "no system.json" in proc.stderr
