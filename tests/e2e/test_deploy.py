"""`vitfpga generate` writes a whole bitstream project whose TCL passes the static checks, and
`vitfpga deploy` bundles what goes on the board into one verifiable, deterministic archive."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from vitfpga.hls.plan.engine import ModelPlan
from vitfpga.hls.plan.system import SystemSpec
from vitfpga.sim.tclcheck import check_hls_script, check_vivado_project

DESIGN = "vitfpga_vit_digits"

def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vitfpga.cli", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def project(quick_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deploy") / "project"
    proc = _cli("generate", str(quick_run), "--board", "pynq-z2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_project_holds_everything_a_user_builds_from(project: Path) -> None:
    for rel in ("Makefile", "README.md", "plan.json", "system.json", "vivado/build.tcl",
                "hls/run_hls.tcl", "rtl/vitfpga_engine.v", "pynq/setup.py",
                "pynq/run_on_board.py", "pynq/test_images.npz", f"pynq/{DESIGN}/driver.py",
                f"pynq/{DESIGN}/hw.json", f"pynq/{DESIGN}/model.npz",
                f"pynq/{DESIGN}/runtime/forward.py"):
        assert (project / rel).is_file(), rel
    make = (project / "Makefile").read_text()
    for target in ("bitstream:", "hls:", "deploy:"):
        assert target in make
    assert "BOARD_IP" in make and f"{DESIGN}.bit" in make


@pytest.mark.tclsh
def test_generated_tcl_passes_the_static_checks(project: Path) -> None:
    spec = SystemSpec(**json.loads((project / "system.json").read_text()))
    plan = ModelPlan.from_json((project / "plan.json").read_text())
    hw = json.loads((project / "pynq" / DESIGN / "hw.json").read_text())
    assert check_vivado_project(project / "vivado" / "build.tcl", spec, plan, hw) == []
    assert check_hls_script(project / "hls" / "run_hls.tcl") == []
    # ...and the driver's names are the TCL's: a renamed cell in hw.json is caught.
    assert check_vivado_project(project / "vivado" / "build.tcl", spec, plan,
                                hw | {"dma_cell": "axi_dma_1"})


def test_deploy_archive_is_complete_checksummed_and_deterministic(project: Path,
                                                                  tmp_path: Path) -> None:
    proc = _cli("deploy", str(project), "--out", str(tmp_path / "a"))
    assert proc.returncode == 0, proc.stderr
    assert "WITHOUT a bitstream" in " ".join(proc.stdout.split())  # rich wraps long paths
    archive = tmp_path / "a" / f"{DESIGN}.tar.gz"
    members = _members(archive)
    manifest = json.loads(members[f"{DESIGN}/MANIFEST.json"])
    assert manifest == json.loads((tmp_path / "a" / "MANIFEST.json").read_text())
    assert manifest["bitstream"] == {"path": f"{DESIGN}/overlay/{DESIGN}.bit", "present": False,
                                     "build": manifest["bitstream"]["build"]}
    files = manifest["files"]
    assert manifest["platform"] == {"path": f"{DESIGN}/overlay/{DESIGN}.xsa", "present": False}
    for rel in ("setup.py", "run_on_board.py", "test_images.npz", f"{DESIGN}/driver.py",
                f"{DESIGN}/hw.json", f"{DESIGN}/model.npz", f"{DESIGN}/runtime/__init__.py"):
        assert rel in files, rel
    for rel, meta in files.items():
        data = members[f"{DESIGN}/{rel}"]
        assert hashlib.sha256(data).hexdigest() == meta["sha256"] and len(data) == meta["bytes"]
    sums = members[f"{DESIGN}/SHA256SUMS"].decode().splitlines()
    assert len(sums) == len(files) and all("  " in line for line in sums)
    # The same project gives the same bytes.
    assert _cli("deploy", str(project), "--out", str(tmp_path / "b")).returncode == 0
    assert (tmp_path / "b" / archive.name).read_bytes() == archive.read_bytes()


def test_deploy_takes_the_bitstream_when_built(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "built"
    subprocess.run(["cp", "-r", str(project), str(copy)], check=True)
    assert _cli("deploy", str(copy), "--out", str(tmp_path / "x"),
                "--require-bitstream").returncode == 2
    assert not (tmp_path / "x").exists()
    output = copy / "vivado" / "output"
    output.mkdir(parents=True)
    (output / f"{DESIGN}.bit").write_bytes(b"\x00\x09bitstream")  # as `make bitstream` leaves
    (output / f"{DESIGN}.hwh").write_text("<MODULES/>")
    proc = _cli("deploy", str(copy), "--out", str(tmp_path / "x"), "--require-bitstream")
    assert proc.returncode == 0, proc.stderr
    members = _members(tmp_path / "x" / f"{DESIGN}.tar.gz")
    assert members[f"{DESIGN}/{DESIGN}/overlay/{DESIGN}.bit"] == b"\x00\x09bitstream"
    assert f"{DESIGN}/{DESIGN}/overlay/{DESIGN}.hwh" in members
    manifest = json.loads(members[f"{DESIGN}/MANIFEST.json"])
    assert manifest["bitstream"]["present"] is True
    assert manifest["platform"]["present"] is False  # a build from before the .xsa
    # The hardware platform beside them goes along (PYNQ 4's remote Overlay loads it).
    (output / f"{DESIGN}.xsa").write_bytes(b"PK\x03\x04xsa")
    proc = _cli("deploy", str(copy), "--out", str(tmp_path / "y"), "--require-bitstream")
    assert proc.returncode == 0, proc.stderr
    members = _members(tmp_path / "y" / f"{DESIGN}.tar.gz")
    assert members[f"{DESIGN}/{DESIGN}/overlay/{DESIGN}.xsa"] == b"PK\x03\x04xsa"
    assert json.loads(members[f"{DESIGN}/MANIFEST.json"])["platform"]["present"] is True


def test_bad_input_is_refused_and_nothing_is_lost(quick_run: Path, project: Path,
                                                  tmp_path: Path) -> None:
    # An existing non-empty directory is kept without --force...
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "mine.txt").write_text("user data")
    proc = _cli("generate", str(quick_run), "--board", "pynq-z2", "--out", str(keep))
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert [p.name for p in keep.iterdir()] == ["mine.txt"]
    # ...for deploy too.
    proc = _cli("deploy", str(project), "--out", str(keep))
    assert proc.returncode == 2 and "--force" in proc.stderr
    # A board without a processing system, and a part that is not a Zynq: one line, no output.
    boards = tmp_path / "boards.toml"
    boards.write_text("""[boards.arty]
part = "xc7a100tcsg324-1"
lut = 63400
ff = 126800
bram36 = 135
uram = 0
dsp = 240
clock_mhz = 100.0
""")
    proc = _cli("generate", str(quick_run), "--board", "arty", "--boards-file", str(boards),
                "--out", str(tmp_path / "arty"))
    assert proc.returncode == 2 and "Zynq" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "arty").exists()
    assert not list(tmp_path.glob(".arty.*"))
    boards.write_text(boards.read_text().replace("clock_mhz = 100.0",
                                                 "clock_mhz = 100.0\nhas_ps = false"))
    proc = _cli("generate", str(quick_run), "--board", "arty", "--boards-file", str(boards),
                "--out", str(tmp_path / "arty"))
    assert proc.returncode == 2 and "no processing system" in proc.stderr, proc.stderr
    # deploy of something that is not a project
    proc = _cli("deploy", str(tmp_path), "--out", str(tmp_path / "d"))
    assert proc.returncode == 2 and "not a vitfpga project" in proc.stderr
    assert not (tmp_path / "d").exists()


def test_archive_unpacks_to_an_installable_package(project: Path, tmp_path: Path) -> None:
    assert _cli("deploy", str(project), "--out", str(tmp_path / "d")).returncode == 0
    with tarfile.open(tmp_path / "d" / f"{DESIGN}.tar.gz") as tar:
        tar.extractall(tmp_path / "board", filter="data")
    root = tmp_path / "board" / DESIGN
    check = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=root,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation",
                           "--no-deps", "--no-index", "--target", str(tmp_path / "site"),
                           str(root)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    installed = tmp_path / "site" / DESIGN
    assert [p.name for p in (tmp_path / "site").glob("*.dist-info")] == \
        [f"{DESIGN}-0.1.0.dist-info"]
    for rel in ("hw.json", "model.npz", "weights_ram.bin", "runtime/intmath.py",
                "overlay/README.txt"):
        assert (installed / rel).is_file(), rel
