"""C simulation of the emitted HLS engine with plain g++ against the hls4ml copy of ap_types.

This checks the C++ arithmetic, the weight decoders (dense intB of mixed widths, N:M, codebook)
and the stream protocol bit for bit against the golden, for any number of layers in one run of
one compiled testbench; it is not cycle-accurate, so its SimResults carry no measured cycles
(Vitis cosim or the RTL sims do). When the plan keeps weights
in the start-up-loaded RAM, the testbench first loads them from the project's
tb_data/weights_ram.mem, as the host would, and that load is checked too.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from vitfpga.errors import VerificationFailed
from vitfpga.hls.emit.hls import RAM_WORDS_FILE, read_matrix, write_matrix
from vitfpga.hls.plan.engine import LayerSlot, ModelPlan
from vitfpga.sim.result import SimResult, compare
from vitfpga.sim.tools import CXX, ap_types_dir, gxx_status

__all__ = ["run_csim"]

COMPILE_TIMEOUT_S = 600
RUN_TIMEOUT_S = 600
_ERROR_LINES = 12
_JOB = re.compile(r"^JOB (\d+) LAYER (\d+) COMPARED (\d+) MISMATCHES (\d+) "
                  r"PROTOCOL_ERRORS (\d+) ITERATIONS (\d+)$", re.MULTILINE)
_SELFCHECK = re.compile(r"^SELFCHECK PROTOCOL_ERRORS (\d+)$", re.MULTILINE)
_LOAD = re.compile(r"^LOAD WORDS (\d+) DROPPED (\d+) PROTOCOL_ERRORS (\d+) ITERATIONS (\d+)$",
                   re.MULTILINE)
_SOURCES = ("vitfpga_engine.cpp", "tb_vitfpga_engine.cpp")
_STAMP = "csim.stamp"


def _first_errors(text: str) -> str:
    lines = [ln for ln in text.splitlines() if "error" in ln.lower()] or text.splitlines()
    return "\n".join(lines[:_ERROR_LINES])


def _source_key(hls_dir: Path, flags: list[str]) -> str:
    """A digest of everything the build reads, so an unchanged project is not rebuilt."""
    digest = hashlib.sha256("\0".join([CXX, *flags]).encode())
    for path in sorted(p for p in hls_dir.rglob("*") if p.suffix in (".h", ".cpp")):
        digest.update(str(path.relative_to(hls_dir)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _compile(hls_dir: Path, build_dir: Path) -> Path:
    """Compile top and testbench in parallel (ap_int makes each unit slow), then link.

    Skipped when the build in `build_dir` came from identical sources and flags."""
    flags = ["-O2", "-std=c++17", "-Wno-unknown-pragmas",
             # -isystem silences the vendor headers' own warnings but keeps their search order.
             "-isystem", str(ap_types_dir()), "-I", str(hls_dir), "-I", str(hls_dir / "include")]
    exe, stamp = build_dir / "csim", build_dir / _STAMP
    key = _source_key(hls_dir, flags)
    if exe.is_file() and stamp.is_file() and stamp.read_text() == key:
        return exe
    stamp.unlink(missing_ok=True)
    objects = [build_dir / (Path(src).stem + ".o") for src in _SOURCES]

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise VerificationFailed(f"csim: {CXX} timed out after {e.timeout}s") from e

    commands = [[CXX, *flags, "-c", str(hls_dir / src), "-o", str(obj)]
                for src, obj in zip(_SOURCES, objects, strict=True)]
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        results = list(pool.map(run, commands))
    if all(r.returncode == 0 for r in results):
        results.append(run([CXX, *map(str, objects), "-o", str(exe)]))
    for r in results:
        if r.returncode != 0:
            raise VerificationFailed(f"csim: {CXX} failed on {hls_dir}:\n{_first_errors(r.stderr)}")
    stamp.write_text(key)
    return exe


def _check_job(plan: ModelPlan, name: str, x: np.ndarray,
               expected: np.ndarray) -> tuple[LayerSlot, np.ndarray, np.ndarray]:
    slot = plan.slot(name)
    x, expected = np.asarray(x, dtype=np.int64), np.asarray(expected, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != slot.k:
        raise ValueError(f"{slot.ident}: input must be (rows, {slot.k}), got {x.shape}")
    if expected.shape != (x.shape[0], slot.n):
        raise ValueError(f"{slot.ident}: expected must be ({x.shape[0]}, {slot.n}), "
                         f"got {expected.shape}")
    for what, values in (("input", x), ("expected", expected)):
        if values.size and (values.min() < -128 or values.max() > 127):
            raise ValueError(f"{slot.ident}: {what} values outside int8")
    return slot, x, expected


def run_csim(hls_dir: Path, plan: ModelPlan,
             jobs: Sequence[tuple[str, np.ndarray, np.ndarray]],
             build_dir: Path) -> list[SimResult]:
    """Compile `hls_dir` (from emit_hls) once and run every job through one testbench process.

    A job is (layer name, int8 input rows (M, K), expected output rows (M, N)); rows are
    unpadded, the testbench pads them to whole folds. Returns one SimResult per job, in order,
    whose counts come from comparing the output files read back in Python (the testbench's own
    counts must agree). Raises ValueError on misshapen jobs, VerificationFailed when the C++ does
    not compile or run, or the stream protocol is wrong (missing/extra beats, TLAST, padded
    channels, iteration counts, or a run of an unknown layer or zero rows that does anything),
    or the start-up weight load of a plan with a RAM part (plan.ram_depth > 0) fails or does not
    load exactly plan.ram_depth words.
    """
    checked = [_check_job(plan, name, x, expected) for name, x, expected in jobs]
    if not checked:
        raise ValueError("csim needs at least one job")
    if (reason := gxx_status()) is not None:
        raise VerificationFailed(f"csim cannot run: {reason}")
    hls_dir, build_dir = Path(hls_dir).resolve(), Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)

    lines, outputs = [], []
    for i, (slot, x, expected) in enumerate(checked):
        names = [f"job{i}_{part}.txt" for part in ("input", "expected", "output")]
        write_matrix(build_dir / names[0], x)
        write_matrix(build_dir / names[1], expected)
        outputs.append(build_dir / names[2])
        outputs[-1].unlink(missing_ok=True)  # a stale output must never pass for a fresh one
        lines.append(f"{plan.layers.index(slot)} {' '.join(names)}\n")
    (build_dir / "jobs.txt").write_text("".join(lines))
    # The testbench reads the RAM words beside its jobs file; a stale copy must never stand in
    # for the project's own (nor linger for a project without a RAM part).
    ram_words = build_dir / RAM_WORDS_FILE
    ram_words.unlink(missing_ok=True)
    if plan.ram_depth:
        source = hls_dir / "tb_data" / RAM_WORDS_FILE
        if not source.is_file():
            raise VerificationFailed(f"csim: {source} is missing; the plan keeps "
                                     f"{plan.ram_depth} weight words in the loaded RAM")
        shutil.copyfile(source, ram_words)
    exe = _compile(hls_dir, build_dir)

    try:
        proc = subprocess.run([str(exe), "jobs.txt"], capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, cwd=build_dir)
    except subprocess.TimeoutExpired as e:
        raise VerificationFailed(f"csim timed out after {e.timeout}s") from e
    reports = [tuple(map(int, m.groups())) for m in _JOB.finditer(proc.stdout)]
    if (proc.returncode not in (0, 1) or _SELFCHECK.search(proc.stdout) is None
            or [r[0] for r in reports] != list(range(len(checked)))):
        raise VerificationFailed(f"csim failed (exit {proc.returncode}):\n"
                                 f"{_first_errors(proc.stderr + proc.stdout)}")

    loads = [tuple(map(int, m.groups())) for m in _LOAD.finditer(proc.stdout)]
    loaded = [words for words, _, _, _ in loads]
    if loaded != ([plan.ram_depth] if plan.ram_depth else []):
        raise VerificationFailed(f"csim: the testbench loaded {sum(loaded)} RAM words in "
                                 f"{len(loads)} load(s); the plan keeps {plan.ram_depth} there "
                                 f"(was {hls_dir} emitted from this plan?)")

    results = []
    for (slot, x, expected), output, report in zip(checked, outputs, reports, strict=True):
        # One iteration per compute fold, whatever the codec (an N:M iteration takes R beats).
        if report[5] != int(x.shape[0]) * slot.iterations:
            raise VerificationFailed(
                f"csim of {slot.ident}: {report[5]} iterations, expected "
                f"{int(x.shape[0]) * slot.iterations} (rows x NF x SF)")
        compared, mismatches = compare(read_matrix(output), expected)
        if report[2:4] != (compared, mismatches):
            raise VerificationFailed(
                f"csim of {slot.ident}: testbench counted {report[3]}/{report[2]} mismatches, "
                f"its output file gives {mismatches}/{compared}")
        results.append(SimResult(target="csim", layer=slot.name, compared=compared,
                                 mismatches=mismatches, cycles=None,
                                 ideal_cycles=slot.ideal_cycles(int(x.shape[0]))))
    return results
