"""`vitfpga check PROJECT`: a generated project passes, a tampered one fails with exit 1 and
names what failed, and what is not a project (or has no tclsh to check it with) is exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, run_cli
from vitfpga.cli import main


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("check") / "deit"
    proc = run_cli("generate", "--preset", "deit-tiny", "--board", "kv260", "--weight-bits", "3",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.tclsh
def test_a_generated_project_passes(project: Path) -> None:
    proc = run_cli("check", str(project))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("plan.json, system.json and hw.json agree", "vivado/build.tcl under tclsh",
                 "hls/run_hls.tcl under tclsh", "all 3 checks passed"):
        assert name in proc.stdout, proc.stdout
    assert "FAIL" not in proc.stdout


@pytest.mark.tclsh
def test_a_tampered_build_script_fails(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "deit"
    shutil.copytree(project, copy)
    tcl = copy / "vivado" / "build.tcl"
    text = tcl.read_text()
    old = "-part xck26-sfvc784-2LV-c\n"
    assert text.count(old) == 1, "the generated script changed; update this case"
    tcl.write_text(text.replace(old, "-part xczu7ev-ffvc1156-2-e\n"))
    proc = run_cli("check", str(copy))
    assert_one_line_error(proc, 1, "problem(s) in 1 of 3 checks")
    fails = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAIL ")]
    assert fails and all("vivado/build.tcl" in ln for ln in fails), proc.stdout
    assert any("the project is for part 'xczu7ev-ffvc1156-2-e'" in ln for ln in fails), fails


@pytest.mark.tclsh
def test_a_missing_hls_script_fails(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "deit"
    shutil.copytree(project, copy)
    (copy / "hls" / "run_hls.tcl").unlink()
    proc = run_cli("check", str(copy))
    assert_one_line_error(proc, 1, "problem(s) in 1 of 3 checks")
    assert "FAIL hls/run_hls.tcl" in proc.stdout and "is missing" in proc.stdout


def test_not_a_project_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_text("{}")
    assert_one_line_error(run_cli("check", str(tmp_path)), 2, "is not a vitfpga project")
    assert_one_line_error(run_cli("check", str(tmp_path / "nowhere")), 2,
                          "is not a vitfpga project")


def test_corrupt_system_json_is_bad_input(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "deit"
    shutil.copytree(project, copy)
    (copy / "system.json").write_text('{"design": "x"}')
    assert_one_line_error(run_cli("check", str(copy)), 2, "system.json: corrupt")


def test_missing_tclsh_is_bad_input(project: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("vitfpga.sim.tools.tclsh_status", lambda: "tclsh is not installed (x)")
    assert main(["check", str(project)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot check" in err[0] and "tclsh is not installed" in err[0]
