"""A plain (non-editable) install must carry the templates and kernel sources."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_templates_and_packages(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("vitfpga-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("vitfpga/cli.py", "vitfpga/quant/intvit.py", "vitfpga/hls/plan/engine.py",
                     "vitfpga/sim/rtl.py", "vitfpga/sim/tb/engine_tb.py",
                     "vitfpga/templates/rtl/vitfpga_engine.v.j2",
                     "vitfpga/templates/hls/run_hls.tcl.j2",
                     "vitfpga/templates/vivado/build.tcl.j2",
                     "vitfpga/templates/pynq/setup.py.j2",
                     "vitfpga/templates/pynq/run_on_board.py.j2",
                     "vitfpga/templates/pynq/package/driver.py",
                     "vitfpga/templates/pynq/package/__init__.py",
                     "vitfpga/templates/project/Makefile.j2",
                     "vitfpga/templates/project/README.md.j2",
                     "vitfpga/runtime/forward.py", "vitfpga/runtime/intmath.py",
                     "vitfpga/deploy.py", "vitfpga/sim/overlay.py", "vitfpga/sim/tclcheck.py",
                     "vitfpga/sim/tclsh.py", "vitfpga/sim/tcl/stubs.tcl",
                     "vitfpga/sim/models/xilinx_prims.v"):
        assert required in names, required
    assert any(n.startswith("vitfpga/templates/hls/include/") and n.endswith(".h") for n in names)
    assert any(n.startswith("vitfpga/templates/rtl/include/") and n.endswith(".v") for n in names)
