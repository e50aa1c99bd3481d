"""The tool probes (vitfpga.sim.tools): a run checks every tool it will start before training,
and a test marked with a tool is skipped, with the probe's reason, where the tool is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import pytest_runtest_setup
from vitfpga.cli import main
from vitfpga.sim import tools

# Each case: run config, the probe that reports its tool missing, and the words of the one line.
CASES = {
    "whole-model run on verilator": (
        '[hardware]\nsynth = false\n[verify]\nsimulators = ["csim"]\nhil_images = 0\n'
        'whole_images = 8\n',
        "verilator_status",
        "verilator is not usable (the whole-model run needs it): no verilator here "
        "(or set [verify] whole_images = 0)"),
    "hardware in the loop on icarus": (
        '[hardware]\nsynth = false\n[verify]\nsimulators = ["csim"]\nhil_images = 4\n'
        'hil_simulator = "icarus"\nwhole_images = 0\n',
        "icarus_status",
        "icarus is not usable (hardware in the loop needs it): no icarus here "
        "(or set [verify] hil_images = 0 or another hil_simulator)"),
    "whole-model synthesis": (
        '[hardware]\nwhole_synth = true\n[verify]\nsimulators = ["csim"]\nhil_images = 0\n'
        'whole_images = 8\n',
        "yosys_status",
        "Yosys is not usable (the resource check and the whole-model synthesis needs it): "
        "no yosys here (or set [hardware] synth = false)"),
    "layer verification on g++": (
        '[hardware]\nsynth = false\n[verify]\nsimulators = ["csim"]\nhil_images = 0\n'
        'whole_images = 0\n',
        "gxx_status",
        "csim is not usable (layer verification needs it): no gxx here "
        "(or leave csim out of [verify] simulators)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_missing_tool_stops_the_run_before_anything_is_written(
        case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    text, probe, words = CASES[case]
    (tmp_path / "run.toml").write_text(text)
    for name in ("gxx_status", "icarus_status", "verilator_status", "yosys_status"):
        tool = name.removesuffix("_status")
        monkeypatch.setattr(tools, name, (lambda t=tool: f"no {t} here") if name == probe
                            else (lambda: None))
    trained = []
    monkeypatch.setattr("vitfpga.pipeline.step_train_float", lambda run: trained.append(run))
    out = tmp_path / "out"
    assert main(["run", "--config", str(tmp_path / "run.toml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"vitfpga: {words}"]
    assert not out.exists() and not trained


def test_nothing_missing_needs_nothing_of_a_run_that_starts_no_tool() -> None:
    from vitfpga.config import HardwareConfig, RunConfig, VerifyConfig
    from vitfpga.hardware_steps import needed_tools

    cfg = RunConfig(hardware=HardwareConfig(synth=False),
                    verify=VerifyConfig(simulators=("csim",), hil_images=0, whole_images=0))
    assert [t for t, _, _ in needed_tools(cfg)] == ["csim"]
    full = RunConfig()
    assert {t for t, _, _ in needed_tools(full)} == {*full.verify.simulators, "yosys",
                                                      full.verify.hil_simulator, "verilator"}


class _Item:
    def __init__(self, *markers: str):
        self.markers = markers

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def test_a_marked_test_is_skipped_with_the_probes_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "tclsh_status", lambda: "tclsh is not installed (here)")
    monkeypatch.setattr(tools, "yosys_status", lambda: None)
    with pytest.raises(pytest.skip.Exception, match=r"tclsh: tclsh is not installed \(here\)"):
        pytest_runtest_setup(_Item("slow", "tclsh"))  # type: ignore[arg-type]
    pytest_runtest_setup(_Item("yosys"))  # type: ignore[arg-type]  # usable: runs
    pytest_runtest_setup(_Item())  # type: ignore[arg-type]  # unmarked: never probed


def test_every_tool_marker_is_registered_and_probed() -> None:
    import tomllib

    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    markers = tomllib.loads(pyproject.read_text())["tool"]["pytest"]["ini_options"]["markers"]
    registered = {m.split(":")[0] for m in markers}
    assert set(tools.MARKERS) | {"slow"} == registered
    with pytest.raises(ValueError, match="unknown tool"):
        tools.status("modelsim")
