"""The emitted multi-layer HLS C++ engine, compiled with g++, against the integer golden."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from tests.conftest import hand_model_plan, random_layer, random_rows
from vitfpga.errors import VerificationFailed
from vitfpga.hls.emit.hls import JOBS_FILE, RAM_WORDS_FILE, emit_hls, read_matrix
from vitfpga.hls.emit.templating import hexword, template_root
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, fixed_plan
from vitfpga.hls.plan.layout import model_tables
from vitfpga.ir import IntLinear
from vitfpga.runtime.intmath import requantize
from vitfpga.runtime.model import linear_golden
from vitfpga.sim.csim import run_csim
from vitfpga.sim.tools import ap_types_dir

pytestmark = pytest.mark.gxx

HOSTILE = 'blocks.0/attn "qkv"; $finish'
PE, SIMD = 4, 8  # 128-bit weight words, 64-bit beats: a weight load sends 2 beats a word
# (name, K, N, weight bits, relu): no K divides SIMD and no N divides PE except by padding; the
# 2-bit layers' streams pack two elements a 4-bit lane; SF runs from 1 to 9 and NF from 1 to 8.
SPECS = [
    (HOSTILE, 20, 13, 4, False),
    ("blocks.0.mlp.fc1", 7, 30, 2, True),
    ("blocks.0.mlp.fc2", 30, 5, 4, False),
    ("head", 70, 3, 2, False),
]


class Engine(NamedTuple):
    plan: ModelPlan
    layers: dict[str, IntLinear]
    hls_dir: Path
    build_dir: Path


def _model() -> dict[str, IntLinear]:
    return {name: random_layer(k, n, bits=bits, relu=relu, seed=10 + i, name=name)
            for i, (name, k, n, bits, relu) in enumerate(SPECS)}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """One emitted project and one build directory: every test that does not change the C++
    reuses the same compiled testbench (run_csim skips an unchanged build)."""
    root = tmp_path_factory.mktemp("engine")
    layers = _model()
    plan = hand_model_plan(layers, pe=PE, simd=SIMD, rows=3)
    assert plan.ram_depth == 0  # the no-URAM design every block-RAM-sized plan gets
    emit_hls(plan, layers, root / "out")
    return Engine(plan, layers, root / "out" / "hls", root / "build")


# Weight words 0..11 are layer 0's, 12..15 layer 1's (8 iterations of 2 bits in 4-bit lanes),
# 16..23 layer 2's, 24..28 layer 3's (9 iterations of 2 bits, the last word half used).
WDEPTH = 29
SPLITS = {"mid-layer": 14, "all-ram": 0}


def _split_plan(layers: dict[str, IntLinear], rom_depth: int) -> ModelPlan:
    return fixed_plan(layers, dict.fromkeys(layers, 3), get_board("pynq-z2"), PE, SIMD,
                      rom_depth=rom_depth)


@pytest.fixture(scope="module", params=list(SPLITS.values()), ids=list(SPLITS))
def split_engine(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The same model with weight words [rom_depth, WDEPTH) in the RAM a weight load fills; one
    build per split, shared like `engine`'s."""
    root = tmp_path_factory.mktemp("split")
    layers = _model()
    plan = _split_plan(layers, request.param)
    assert (plan.rom_depth, plan.ram_depth) == (request.param, WDEPTH - request.param)
    emit_hls(plan, layers, root / "out")
    return Engine(plan, layers, root / "out" / "hls", root / "build")


def _golden_jobs(engine: Engine, rows: list[int]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    jobs = []
    for i, (slot, m) in enumerate(zip(engine.plan.layers, rows, strict=True)):
        x = random_rows(m, slot.k, seed=i)
        jobs.append((slot.name, x, linear_golden(x, engine.layers[slot.name])))
    return jobs


def test_every_layer_matches_golden(engine: Engine) -> None:
    assert engine.plan.weight_bits == 4 and {s.sf for s in engine.plan.layers} == {1, 3, 4, 9}
    jobs = _golden_jobs(engine, [5, 2, 3, 4])
    jobs.append(jobs[0])  # the same layer again: no state may leak from the runs between
    results = run_csim(engine.hls_dir, engine.plan, jobs, engine.build_dir)
    assert len(results) == len(jobs)
    for (name, x, _), result in zip(jobs, results, strict=True):
        slot = engine.plan.slot(name)
        assert result.target == "csim"
        assert result.layer == name
        assert result.compared == x.shape[0] * slot.n > 0
        assert result.mismatches == 0
        assert result.cycles is None
        assert result.ideal_cycles == x.shape[0] * slot.nf * slot.sf
    # The data really exercises ReLU's clamp at 0, and negative outputs without it.
    def low(relu: bool) -> int:
        return min(int(y.min()) for name, _, y in jobs if engine.plan.slot(name).relu == relu)

    assert low(True) == 0 and low(False) < 0


def test_packaged_test_vectors_pass(engine: Engine) -> None:
    """The tb_data/ that emit_hls ships for Vitis passes csim as-is, on the build already made."""
    tb_data = engine.hls_dir / "tb_data"
    jobs = []
    for line in (tb_data / JOBS_FILE).read_text().splitlines():
        index, inputs, expected, _ = line.split()
        name = engine.plan.layers[int(index)].name
        x, y = read_matrix(tb_data / inputs), read_matrix(tb_data / expected)
        assert x.min() < -100 and x.max() > 100  # full int8 range, not a trivial pattern
        np.testing.assert_array_equal(y, linear_golden(x, engine.layers[name]))
        jobs.append((name, x, y))
    assert [name for name, _, _ in jobs] == [s.name for s in engine.plan.layers]
    assert all(r.ok for r in run_csim(engine.hls_dir, engine.plan, jobs, engine.build_dir))
    built = (engine.build_dir / "csim").stat().st_mtime_ns
    assert all(r.ok for r in run_csim(engine.hls_dir, engine.plan, jobs, engine.build_dir))
    assert (engine.build_dir / "csim").stat().st_mtime_ns == built  # reused, not rebuilt


def test_wrong_weights_are_caught(engine: Engine) -> None:
    """The engine's ROM holds the emitted weights; a golden from altered weights must disagree
    exactly where the altered layer's outputs differ, and nowhere else."""
    jobs = _golden_jobs(engine, [4, 4, 4, 4])
    name, x, _ = jobs[2]
    layer = engine.layers[name]
    weight = layer.weight.copy()
    weight[3] = -weight[3]  # one output channel's weights negated
    altered = linear_golden(x, dataclasses.replace(layer, weight=weight))
    wrong = int(np.count_nonzero(altered != jobs[2][2]))
    assert wrong > 0
    jobs[2] = (name, x, altered)
    results = run_csim(engine.hls_dir, engine.plan, jobs, engine.build_dir)
    assert [r.mismatches for r in results] == [0, 0, wrong, 0]
    assert not results[2].ok


def _copy(engine: Engine, dest: Path) -> Path:
    return Path(shutil.copytree(engine.hls_dir, dest))


def _replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path.name} exactly once"
    path.write_text(text.replace(old, new))


def _run_unknown_layers(hls_dir: Path, plan: ModelPlan) -> None:
    """The engine runs a layer >= NLAYERS instead of finishing at once."""
    _replace_once(hls_dir / "include" / "vitfpga" / "mvu.h", ": ap_uint<64>(0);",
                  ": ap_uint<64>(rows);")


def _tlast_never(hls_dir: Path, plan: ModelPlan) -> None:
    _replace_once(hls_dir / "include" / "vitfpga" / "mvu.h", "beat.last = (r == r_last)",
                  "beat.last = (r == rows)")


def _padded_channel_bias(hls_dir: Path, plan: ModelPlan) -> None:
    """A padded output channel (15 of layer 0, N=13) gets a bias, so it no longer outputs 0."""
    slot = plan.layers[0]
    assert slot.nf * PE - 1 >= slot.n  # the top lane of the last fold is padding
    weights = hls_dir / "weights.h"
    bias = weights.read_text().split("vitfpga_bias[")[1].splitlines()[slot.c_base + slot.nf]
    padded = bias.replace('("0x00000000', '("0x00001000')
    _replace_once(weights, bias, padded)


@pytest.mark.parametrize(("mutate", "message"), [
    (_run_unknown_layers, "must do nothing"),
    (_tlast_never, "TLAST"),
    (_padded_channel_bias, "padded output channels not 0"),
])
def test_protocol_errors_fail_even_when_values_match(
        engine: Engine, tmp_path: Path, mutate: Callable[[Path, ModelPlan], None],
        message: str) -> None:
    hls_dir = _copy(engine, tmp_path / "hls")
    mutate(hls_dir, engine.plan)
    with pytest.raises(VerificationFailed, match=message):
        run_csim(hls_dir, engine.plan, _golden_jobs(engine, [2, 1, 1, 1]), tmp_path / "build")


@pytest.mark.parametrize(("pe", "simd", "specs", "rom_depth"), [
    # 2048-bit weight words (AP_INT_MAX_W), 8-bit weights beside 3-bit ones packed in 8-bit
    # lanes (wide.b's 6 iterations in words 8..10, two elements straddling a word boundary, the
    # second from ROM word 9 into RAM word 10), each RAM word loaded as 16 beats.
    (16, 16, [("wide.a", 64, 32, 8, False), ("wide.b", 40, 20, 3, True)], 10),
    # PE=1 (one output lane per beat), an odd SIMD, and a 1x1-fold layer; 12-bit words in the RAM
    # from word 20 (of narrow.a's 0..47) on, each loaded as one 24-bit beat half of which is junk.
    (1, 3, [("narrow.a", 16, 8, 4, False), ("narrow.b", 3, 1, 2, True)], 20),
    # SF=1 everywhere: a fresh input beat every iteration, never a replay. All in the ROM.
    (3, 32, [("flat.a", 32, 9, 4, False), ("flat.b", 20, 2, 4, False)], None),
])
def test_other_foldings_match_golden(tmp_path: Path, pe: int, simd: int,
                                     specs: list[tuple[str, int, int, int, bool]],
                                     rom_depth: int | None) -> None:
    layers = {name: random_layer(k, n, bits=bits, relu=relu, seed=k + n, name=name)
              for name, k, n, bits, relu in specs}
    plan = fixed_plan(layers, dict.fromkeys(layers, 2), get_board("pynq-z2"), pe, simd,
                      rom_depth=rom_depth)
    assert plan.ram_depth == (0 if rom_depth is None else plan.weight_depth - rom_depth)
    emit_hls(plan, layers, tmp_path / "out")
    engine = Engine(plan, layers, tmp_path / "out" / "hls", tmp_path / "build")
    results = run_csim(engine.hls_dir, plan, _golden_jobs(engine, [3] * len(specs)),
                       engine.build_dir)
    assert [(r.compared, r.mismatches) for r in results] == [(3 * n, 0) for _, _, n, _, _ in specs]


def _touches_ram(plan: ModelPlan, name: str) -> bool:
    slot = plan.slot(name)
    return slot.w_base + slot.words > plan.rom_depth


def test_split_plans_match_golden_on_every_layer(split_engine: Engine, tmp_path: Path) -> None:
    """Weights split between the ROM and the loaded RAM, mid-way through layer 1's words or all in
    the RAM, give the golden bit for bit on every layer after the testbench's start-up load."""
    plan = split_engine.plan
    assert [_touches_ram(plan, s.name) for s in plan.layers] == \
        [plan.rom_depth == 0, True, True, True]
    if plan.rom_depth:  # layer 1 reads both memories
        assert plan.layers[1].w_base < plan.rom_depth < plan.layers[1].w_base + plan.layers[1].words
    jobs = _golden_jobs(split_engine, [5, 2, 3, 4])
    jobs.append(jobs[1])  # the first RAM layer again, after runs of the others
    results = run_csim(split_engine.hls_dir, plan, jobs, split_engine.build_dir)
    assert [(r.compared, r.mismatches) for r in results] == \
        [(x.shape[0] * plan.slot(name).n, 0) for name, x, _ in jobs]

    # The packaged tb_data/ as Vitis runs it: the testbench finds weights_ram.mem beside the jobs.
    exe = split_engine.build_dir / "csim"
    proc = subprocess.run([str(exe), str(split_engine.hls_dir / "tb_data" / JOBS_FILE),
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    bpw = 2  # 128-bit words in 64-bit beats; one more word is sent past the RAM, and dropped
    assert (f"LOAD WORDS {plan.ram_depth} DROPPED 1 PROTOCOL_ERRORS 0 "
            f"ITERATIONS {(plan.ram_depth + 1) * bpw}\n") in proc.stdout


def _as_unloaded(engine: Engine, name: str) -> IntLinear:
    """The layer as the engine computes it before any weight load: the weights of its words in
    the RAM read as the RAM's power-up zeros (iteration `it`'s dense elements sit in word
    w_base + it*E div LANE_BITS; no element straddles here, E divides LANE_BITS)."""
    plan, slot = engine.plan, engine.plan.slot(name)
    assert slot.codec == "dense" and plan.lane_bits % slot.ebits == 0
    weight = engine.layers[name].weight.copy()
    for it in range(slot.iterations):
        if slot.w_base + it * slot.ebits // plan.lane_bits >= plan.rom_depth:
            nf, sf = divmod(it, slot.sf)
            weight[nf * PE:(nf + 1) * PE, sf * SIMD:(sf + 1) * SIMD] = 0
    return dataclasses.replace(engine.layers[name], weight=weight)


def test_runs_without_the_load_see_an_empty_ram(split_engine: Engine) -> None:
    """Skipping the start-up load (the testbench's --no-load) leaves the RAM at its power-up zeros:
    every layer with words in the RAM then misses the golden, exactly as if those weights were 0,
    and a layer wholly in the ROM still matches. So runs really read the RAM part, and nothing
    else (a copy of the weights compiled in, say) stands in for it."""
    plan, build_dir = split_engine.plan, split_engine.build_dir
    jobs = _golden_jobs(split_engine, [3, 3, 3, 3])
    assert all(r.ok for r in run_csim(split_engine.hls_dir, plan, jobs, build_dir))
    # Re-run the testbench run_csim just built on the job files it just wrote, without the load.
    proc = subprocess.run([str(build_dir / "csim"), "--no-load", "jobs.txt"], cwd=build_dir,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # value mismatches only, no protocol errors
    assert "LOAD SKIPPED" in proc.stdout and "LOAD WORDS" not in proc.stdout
    for i, (name, x, y) in enumerate(jobs):
        got = read_matrix(build_dir / f"job{i}_output.txt")
        assert np.array_equal(got, y) != _touches_ram(plan, name), name
        np.testing.assert_array_equal(got, linear_golden(x, _as_unloaded(split_engine, name)))


def test_a_short_weight_load_is_a_protocol_error(tmp_path: Path) -> None:
    """A load that stops one beat early leaves a beat in the stream and miscounts: run_csim fails
    even though every value may still match."""
    layers = _model()
    plan = _split_plan(layers, SPLITS["mid-layer"])
    emit_hls(plan, layers, tmp_path / "out")
    hls_dir = tmp_path / "out" / "hls"
    _replace_once(hls_dir / "include" / "vitfpga" / "wload.h",
                  "load_loop:\n    for (ap_uint<64> i = 0; i < total; ++i)",
                  "load_loop:\n    for (ap_uint<64> i = 1; i < total; ++i)")
    engine = Engine(plan, layers, hls_dir, tmp_path / "build")
    with pytest.raises(VerificationFailed, match="the load left 1 input beats unread"):
        run_csim(hls_dir, plan, _golden_jobs(engine, [1, 1, 1, 1]), engine.build_dir)


def test_a_project_from_another_split_is_refused(engine: Engine, split_engine: Engine) -> None:
    """run_csim checks the project against the plan: a plan with a RAM part needs the project's
    RAM words, and a project with a RAM part cannot pass for a plan without one."""
    with pytest.raises(VerificationFailed, match=f"{RAM_WORDS_FILE} is missing"):
        run_csim(engine.hls_dir, split_engine.plan, _golden_jobs(split_engine, [1, 1, 1, 1]),
                 split_engine.build_dir)
    with pytest.raises(VerificationFailed, match=RAM_WORDS_FILE):
        run_csim(split_engine.hls_dir, engine.plan, _golden_jobs(engine, [1, 1, 1, 1]),
                 split_engine.build_dir)


@pytest.mark.parametrize("rom_depth", list(SPLITS.values()), ids=list(SPLITS))
def test_emit_splits_the_weights_at_rom_depth(tmp_path: Path, rom_depth: int) -> None:
    """The ROM table holds words [0, rom_depth), tb_data/weights_ram.mem the rest, both in order
    and deterministic; emitting a plan without a RAM part over it leaves no trace of the RAM."""
    layers = _model()
    plan = _split_plan(layers, rom_depth)
    words = [hexword(w, plan.word_bits) for w in model_tables(plan, layers).weights]
    emit_hls(plan, layers, tmp_path / "a")
    emit_hls(plan, layers, tmp_path / "b")
    hls = tmp_path / "a" / "hls"
    assert _tree(hls) == _tree(tmp_path / "b" / "hls")

    weights_h = (hls / "weights.h").read_text()
    assert re.findall(r'\bword_t\("0x([0-9a-f]+)", 16\)', weights_h) == words[:rom_depth]
    assert (hls / "tb_data" / RAM_WORDS_FILE).read_text() == \
        "".join(w + "\n" for w in words[rom_depth:])
    config = (hls / "config.h").read_text()
    for name, value in (("ROM_DEPTH", rom_depth), ("RAM_DEPTH", WDEPTH - rom_depth),
                        ("BPW", 2)):
        assert f"static const unsigned {name} = {value};" in config
    top = (hls / "vitfpga_engine.cpp").read_text()
    assert "type=ram_s2p impl=uram" in top and "offset=0x28" in top
    assert ("type=rom_1p" in top) == (rom_depth > 0)
    assert ("vitfpga_weights[" in weights_h) == (rom_depth > 0)

    emit_hls(hand_model_plan(layers, pe=PE, simd=SIMD, rows=3), layers, tmp_path / "a")
    assert not (hls / "tb_data" / RAM_WORDS_FILE).exists()
    for path, text in _tree(hls).items():
        assert b"impl=uram" not in text and b"vitfpga_weights_ram" not in text, path


def test_compile_errors_are_reported(engine: Engine, tmp_path: Path) -> None:
    hls_dir = _copy(engine, tmp_path / "hls")
    (hls_dir / "config.h").write_text("this is not C++;\n")
    with pytest.raises(VerificationFailed, match="error"):
        run_csim(hls_dir, engine.plan, _golden_jobs(engine, [1, 1, 1, 1]), tmp_path / "build")


def test_misshapen_jobs_are_refused(engine: Engine, tmp_path: Path) -> None:
    name, x, y = _golden_jobs(engine, [2, 1, 1, 1])[0]
    bad = [
        [(name, x[:, :-1], y)],  # K short
        [(name, x, y[:, :-1])],  # N short
        [(name, x, y[:1])],  # rows disagree
        [(name, x * 2, y)],  # not int8
        [],
    ]
    for jobs in bad:
        with pytest.raises(ValueError):
            run_csim(engine.hls_dir, engine.plan, jobs, tmp_path / "build")
    assert not (tmp_path / "build").exists()  # refused before anything was written or built


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_emit_is_deterministic_and_sanitised(engine: Engine, tmp_path: Path) -> None:
    first = emit_hls(engine.plan, engine.layers, tmp_path / "a")
    second = emit_hls(engine.plan, engine.layers, tmp_path / "b")
    assert [p.relative_to(tmp_path / "a") for p in first] == \
        [p.relative_to(tmp_path / "b") for p in second]
    tree = _tree(tmp_path / "a")
    assert tree == _tree(tmp_path / "b")
    assert tree == {f"hls/{k}": v for k, v in _tree(engine.hls_dir).items()}
    assert {"hls/config.h", "hls/weights.h", "hls/vitfpga_engine.cpp",
            "hls/tb_vitfpga_engine.cpp", "hls/run_hls.tcl", "hls/include/vitfpga/mvu.h",
            "hls/include/vitfpga/requant.h", f"hls/tb_data/{JOBS_FILE}"} <= set(tree)
    for path, text in tree.items():
        for fragment in (HOSTILE.encode(), b'"qkv"', b"$finish", b"blocks.0/"):
            assert fragment not in text, f"{fragment!r} leaked into {path}"
    ident = engine.plan.slot(HOSTILE).ident
    assert f"vitfpga_layer_{ident} = 0".encode() in tree["hls/config.h"]


_REQUANT_MAIN = """
#include <cstdio>
#include "vitfpga/requant.h"
int main() {
    long long acc, mult, shift;
    int relu;
    while (std::scanf("%lld %lld %lld %d", &acc, &mult, &shift, &relu) == 4) {
        const ap_int<8> y = vitfpga::requant(ap_int<32>(acc), ap_uint<31>(mult),
                                             ap_uint<6>(shift), relu != 0);
        std::printf("%d\\n", y.to_int());
    }
    return 0;
}
"""


def test_requant_header_matches_golden_at_the_extremes(tmp_path: Path) -> None:
    """requant.h on the int32/M/S corners that random layers never reach."""
    src = tmp_path / "requant_main.cpp"
    src.write_text(_REQUANT_MAIN)
    exe = tmp_path / "requant_main"
    subprocess.run(["g++", "-O2", "-std=c++14", "-Wno-unknown-pragmas", "-isystem",
                    str(ap_types_dir()), "-I", str(template_root() / "hls" / "include"),
                    str(src), "-o", str(exe)], check=True, capture_output=True)

    rng = np.random.default_rng(0)
    accs = [-(2**31), -(2**31) + 1, -1, 0, 1, 2**31 - 1, *rng.integers(-(2**31), 2**31, 6)]
    mults = [2**30, 2**31 - 1, *rng.integers(2**30, 2**31, 2)]
    shifts = [1, 2, 30, 31, 32, 33, 61, 62, *rng.integers(1, 63, 2)]
    grid = np.array([(a, m, s) for a in accs for m in mults for s in shifts], dtype=np.int64)
    for relu in (False, True):
        lines = "".join(f"{a} {m} {s} {int(relu)}\n" for a, m, s in grid)
        out = subprocess.run([str(exe)], input=lines, capture_output=True, text=True, check=True)
        got = np.array(out.stdout.split(), dtype=np.int64)
        want = requantize(grid[:, 0], grid[:, 1], grid[:, 2], relu)
        np.testing.assert_array_equal(got, want)


def test_layers_with_identical_weights_share_one_copy(tmp_path: Path) -> None:
    """A decoder shared by every block (DeepCompress-ViT) is stored once: both program entries
    read the same words, each with its own bias and requant tables, and both match the golden."""
    first = random_layer(12, 10, bits=4, seed=3, name="blocks.0.mlp.fc1.v")
    other = random_layer(12, 10, bits=4, seed=4, name="blocks.1.mlp.fc1.v")
    second = dataclasses.replace(other, weight=first.weight.copy())
    codes = random_layer(20, 12, bits=4, seed=5, name="blocks.1.mlp.fc1.u")
    layers = {first.name: first, codes.name: codes, second.name: second}
    plan = fixed_plan(layers, dict.fromkeys(layers, 2), get_board("pynq-z2"), 2, 4)
    a, b = plan.slot(first.name), plan.slot(second.name)
    assert a.w_base == b.w_base and a.c_base != b.c_base
    assert plan.weight_depth == a.words + plan.slot(codes.name).words
    emit_hls(plan, layers, tmp_path / "out")
    engine = Engine(plan, layers, tmp_path / "out" / "hls", tmp_path / "build")
    results = run_csim(engine.hls_dir, plan, _golden_jobs(engine, [3, 3, 3]), engine.build_dir)
    assert [(r.compared, r.mismatches) for r in results] == [(30, 0), (36, 0), (30, 0)]
