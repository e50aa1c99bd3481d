"""Run one RTL unit under a cocotb test module: the per-unit randomised tests' harness.

A unit test writes its stimulus and expected values to a JSON file, and the cocotb module (in
`vitfpga.sim.tb`) reads it from $VITFPGA_UNIT_CASE, drives the unit, and writes what it saw to
$VITFPGA_UNIT_RESULT; the pytest side compares. Judging in pytest keeps the failure message in
the test report instead of a simulator log.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vitfpga.errors import VerificationFailed
from vitfpga.sim.rtl import _BUILD_ARGS, TIMESCALE
from vitfpga.sim.tools import simulator_status, tool_env

__all__ = ["INCLUDE_DIR", "VIT_INCLUDE_DIR", "run_unit"]

INCLUDE_DIR = Path(__file__).resolve().parents[1] / "templates" / "rtl" / "include"
VIT_INCLUDE_DIR = INCLUDE_DIR.parents[1] / "vit" / "include"  # the whole-model units


def run_unit(*, toplevel: str, sources: Sequence[Path], test_module: str,
             parameters: Mapping[str, int | str], case: Mapping[str, Any], build_dir: Path,
             sim: str = "verilator") -> dict[str, Any]:
    """Build `toplevel` from `sources` with `parameters`, run cocotb module `test_module`
    (importable, e.g. `vitfpga.sim.tb.layernorm_vec_tb`) on `case`, return the module's result.

    `build_dir` must be distinct per parameter set (the build is reused when it exists).
    Raises VerificationFailed when the simulator is missing or the cocotb test fails."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    reason = simulator_status(sim)
    if reason is not None:
        raise VerificationFailed(f"{sim}: {reason}")
    build_dir.mkdir(parents=True, exist_ok=True)
    case_file, result_file = build_dir / "case.json", build_dir / "result.json"
    case_file.write_text(json.dumps(case))
    result_file.unlink(missing_ok=True)
    results = build_dir / "results.xml"
    results.unlink(missing_ok=True)
    with tool_env(sim):
        runner = get_runner(sim)
        runner.log.setLevel(logging.WARNING)
        runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel,
                     build_dir=build_dir, build_args=_BUILD_ARGS[sim],
                     parameters=dict(parameters), timescale=TIMESCALE,
                     log_file=build_dir / "build.log")
        # the outcome is read back below, from the results file
        with contextlib.suppress(RuntimeError, SystemExit):
            runner.test(test_module=test_module, hdl_toplevel=toplevel,
                        hdl_toplevel_lang="verilog", build_dir=build_dir, test_dir=build_dir,
                        results_xml=str(results), timescale=TIMESCALE,
                        extra_env={"VITFPGA_UNIT_CASE": str(case_file),
                                   "VITFPGA_UNIT_RESULT": str(result_file)},
                        log_file=build_dir / "sim.log")
    try:
        tests, failed = get_results(results)
    except RuntimeError:
        tests, failed = 0, 1
    if tests == 0 or failed or not result_file.is_file():
        tail = "\n".join((build_dir / "sim.log").read_text(errors="replace").splitlines()[-20:]) \
            if (build_dir / "sim.log").is_file() else "(no sim.log)"
        raise VerificationFailed(f"{toplevel}: the cocotb test failed; last lines of "
                                 f"{build_dir / 'sim.log'}:\n{tail}")
    return json.loads(result_file.read_text())
