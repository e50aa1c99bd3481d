"""The project Makefile's targets, run by real `make` with the vendor tools and the board faked
(issue 21): `make deploy` runs the driver as root in PYNQ's environment on every PYNQ image,
`make hls` uses `vitis-run` where Vitis has it, `make bitstream` copies the .xsa too."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from vitfpga.hls.emit.templating import render

DESIGN = "vitfpga_demo"
XRT = "/etc/profile.d/xrt_setup.sh"
VENV = "/etc/profile.d/pynq_venv.sh"
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _makefile(root: Path, from_hls: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Makefile").write_text(render(
        "project/Makefile.j2", design=DESIGN, model="demo", board="pynq-z2",
        part="xc7z020clg400-1", version="0", from_hls=from_hls, whole=False))
    return root


def _tool(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(0o755)


def _make(root: Path, path: list[Path], *args: str, **env: str
          ) -> subprocess.CompletedProcess[str]:
    search = ":".join([*(str(p) for p in path), "/usr/bin", "/bin"])
    return subprocess.run(["make", "--no-print-directory", *args], cwd=root, text=True,
                          capture_output=True, timeout=60,
                          env={"PATH": search, "HOME": str(root), **env})


def test_deploy_sources_xrt_then_the_venv_each_only_where_present(tmp_path: Path) -> None:
    root = _makefile(tmp_path / "project")
    dry = _make(root, [], "-n", "deploy", "BOARD_IP=10.0.0.2", "VITFPGA=true")
    assert dry.returncode == 0, dry.stderr
    (ssh,) = [line for line in dry.stdout.splitlines() if line.startswith("ssh ")]
    assert f"sudo bash -c '[ -f {XRT} ] && . {XRT}; [ -f {VENV} ] && . {VENV}; cd {DESIGN} &&" \
        in ssh, ssh


def _board(tmp_path: Path, venv_script: bool) -> tuple[Path, list[Path], dict[str, str]]:
    """A fake board reached by fake ssh/scp: its home, sudo that drops the environment (as
    the real one does), system pip3/python3 and, behind the venv script, the venv's."""
    home, bin_, venv_bin, etc = (tmp_path / d for d in ("home", "bin", "venv/bin", "etc"))
    home.mkdir()
    log = tmp_path / "log"
    _tool(bin_, "scp", f'cp "$1" {home}/')
    _tool(bin_, "ssh", f'cd {home} && exec bash -c "${{@: -1}}"')
    _tool(bin_, "sudo", f'exec env -i PATH={bin_}:/usr/bin:/bin "$@"')
    for where, folder in (("system", bin_), ("venv", venv_bin)):
        for name in ("pip3", "python3"):
            _tool(folder, name, f'echo "{where} {name} XILINX_XRT=$XILINX_XRT $*" >> {log}')
    etc.mkdir()
    (etc / "xrt_setup.sh").write_text("export XILINX_XRT=/opt/xilinx/xrt\n")
    if venv_script:
        (etc / "pynq_venv.sh").write_text(f"export PATH={venv_bin}:$PATH\n")
    env = {"BOARD_ENV": f"{etc / 'xrt_setup.sh'} {etc / 'pynq_venv.sh'}",
           "XILINX_XRT": "leaked-from-the-caller"}
    return log, [bin_], env


def _bundle(root: Path) -> None:
    """deploy/<design>.tar.gz as `vitfpga deploy` writes it (faked: VITFPGA=true)."""
    files = {"setup.py": b"# setup\n", "run_on_board.py": b"# run\n"}
    sums = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in files.items())
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in (files | {"SHA256SUMS": sums.encode()}).items():
            info = tarfile.TarInfo(f"{DESIGN}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / "deploy").mkdir()
    (root / "deploy" / f"{DESIGN}.tar.gz").write_bytes(raw.getvalue())


@pytest.mark.parametrize("venv_script,runs_in", [(True, "venv"), (False, "system")],
                         ids=["pynq-3-and-4", "pynq-2.7"])
def test_deploy_runs_the_driver_in_pynqs_environment(tmp_path: Path, venv_script: bool,
                                                     runs_in: str) -> None:
    root = _makefile(tmp_path / "project")
    _bundle(root)
    log, path, env = _board(tmp_path, venv_script)
    proc = _make(root, path, "deploy", "BOARD_IP=10.0.0.2", "VITFPGA=true", **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert log.read_text().splitlines() == [
        f"{runs_in} pip3 XILINX_XRT=/opt/xilinx/xrt install --no-build-isolation --no-deps .",
        f"{runs_in} python3 XILINX_XRT=/opt/xilinx/xrt run_on_board.py"]


def test_deploy_stops_on_a_bad_checksum(tmp_path: Path) -> None:
    root = _makefile(tmp_path / "project")
    _bundle(root)
    log, path, env = _board(tmp_path, True)
    archive = root / "deploy" / f"{DESIGN}.tar.gz"
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    members[f"{DESIGN}/run_on_board.py"] = b"# tampered\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(raw.getvalue())
    proc = _make(root, path, "deploy", "BOARD_IP=10.0.0.2", "VITFPGA=true", **env)
    assert proc.returncode != 0 and not log.exists()


@pytest.mark.parametrize("vitis_run", [True, False], ids=["vitis-run", "vitis_hls"])
def test_hls_uses_vitis_run_where_vitis_has_it(tmp_path: Path, vitis_run: bool) -> None:
    root = _makefile(tmp_path / "project", from_hls=True)
    (root / "hls").mkdir()
    (root / "hls" / "run_hls.tcl").write_text("# run\n")
    tools, log = tmp_path / "tools", tmp_path / "log"
    _tool(tools, "vitis_hls", f'echo "vitis_hls $* in $(basename $PWD)" >> {log}')
    if vitis_run:
        _tool(tools, "vitis-run", f'echo "vitis-run $* in $(basename $PWD)" >> {log}')
    proc = _make(root, [tools], "hls")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    want = ("vitis-run --mode hls --tcl run_hls.tcl" if vitis_run
            else "vitis_hls -f run_hls.tcl")
    assert log.read_text().splitlines() == [f"{want} in hls"]


def test_bitstream_copies_the_xsa_into_the_driver(tmp_path: Path) -> None:
    root = _makefile(tmp_path / "project")
    (root / "vivado").mkdir()
    (root / "vivado" / "build.tcl").write_text("# build\n")
    overlay = root / "pynq" / DESIGN / "overlay"
    overlay.mkdir(parents=True)
    tools = tmp_path / "tools"
    _tool(tools, "vivado", "mkdir -p output && for e in bit hwh xsa; do "
                           f"echo $e > output/{DESIGN}.$e; done")
    proc = _make(root, [tools], "bitstream")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in overlay.iterdir()) == [f"{DESIGN}.{e}"
                                                         for e in ("bit", "hwh", "xsa")]
    assert os.path.getsize(overlay / f"{DESIGN}.xsa") > 0
