"""The emitted HLS C++ engine, compiled with g++, against the integer golden, bit for bit."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import hand_plan, random_layer, random_rows
from vitfpga.errors import VerificationFailed
from vitfpga.hls.emit import template_root
from vitfpga.hls.emit_hls import emit_hls, read_matrix
from vitfpga.hls.names import identifier
from vitfpga.ir import IntLinear
from vitfpga.quant.golden import linear_int, requantize
from vitfpga.sim.csim import ap_types_dir, compiler_status, run_csim
from vitfpga.sim.result import SimResult

pytestmark = pytest.mark.skipif(compiler_status() is not None,
                                reason=f"C simulation unavailable: {compiler_status()}")

ROWS = 5


def _csim(tmp_path: Path, layer: IntLinear, pe: int, simd: int,
          rows: int = ROWS) -> tuple[SimResult, np.ndarray]:
    """Emit, compile and run one layer against its own golden; returns the result and golden."""
    plan = hand_plan(layer, pe=pe, simd=simd, rows=rows)
    emit_hls(plan, layer, tmp_path / "out")
    x = random_rows(rows, layer.k, seed=7)
    expected = linear_int(x, layer).numpy()
    return run_csim(tmp_path / "out" / "hls", plan, x, expected, tmp_path / "build"), expected


@pytest.mark.parametrize(
    ("k", "n", "pe", "simd", "bits", "relu"),
    [
        (32, 64, 4, 8, 4, False),  # the reference folding
        (32, 64, 4, 8, 2, False),
        (24, 12, 3, 6, 3, False),  # odd lane width and non-power-of-two folds
        (32, 64, 4, 8, 8, False),
        (32, 64, 4, 8, 4, True),  # ReLU clamps at 0
        (16, 8, 1, 4, 4, False),  # PE=1: one output lane per beat
        (32, 16, 2, 32, 4, False),  # SIMD=K: SF=1, a fresh input beat every iteration
        (48, 8, 8, 3, 4, True),  # PE=N: NF=1, one output beat per row
        (64, 32, 16, 16, 8, False),  # 2048-bit weight words: needs AP_INT_MAX_W
    ],
)
def test_csim_matches_golden(tmp_path: Path, k: int, n: int, pe: int, simd: int, bits: int,
                             relu: bool) -> None:
    layer = random_layer(k, n, bits=bits, relu=relu, seed=k * n + bits)
    result, expected = _csim(tmp_path, layer, pe, simd)
    assert result.target == "csim"
    assert result.compared == ROWS * n > 0
    assert result.mismatches == 0
    assert result.ok
    assert result.cycles is None
    assert result.ideal_cycles == ROWS * (n // pe) * (k // simd)
    if relu:
        assert expected.min() == 0  # the test data really exercises the clamp
    else:
        assert expected.min() < 0


def test_csim_detects_corrupted_weights(tmp_path: Path) -> None:
    good = random_layer(32, 64, bits=4, seed=3)
    bad_weight = good.weight.copy()
    bad_weight[5] = -bad_weight[5]  # one output channel's weights negated
    bad = dataclasses.replace(good, weight=bad_weight)
    plan = hand_plan(bad, pe=4, simd=8, rows=ROWS)
    emit_hls(plan, bad, tmp_path / "out")
    x = random_rows(ROWS, 32, seed=7)
    expected = linear_int(x, good).numpy()
    wrong = int(np.count_nonzero(linear_int(x, bad).numpy() != expected))
    assert wrong > 0  # the corruption is visible in the golden, so csim must see it too

    result = run_csim(tmp_path / "out" / "hls", plan, x, expected, tmp_path / "build")
    assert result.compared == ROWS * 64
    assert result.mismatches == wrong
    assert not result.ok


def test_csim_reports_compile_errors(tmp_path: Path) -> None:
    layer = random_layer(16, 8, seed=4)
    plan = hand_plan(layer, pe=2, simd=4, rows=2)
    emit_hls(plan, layer, tmp_path / "out")
    top = tmp_path / "out" / "hls" / "vitfpga_engine.cpp"
    top.write_text(top.read_text() + "\nthis is not C++;\n")
    x = random_rows(2, 16)
    with pytest.raises(VerificationFailed, match="error"):
        run_csim(top.parent, plan, x, linear_int(x, layer).numpy(), tmp_path / "build")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_emit_is_deterministic(tmp_path: Path) -> None:
    layer = random_layer(32, 64, bits=3, relu=True, seed=11)
    plan = hand_plan(layer, pe=4, simd=8, rows=ROWS)
    first = emit_hls(plan, layer, tmp_path / "a")
    second = emit_hls(plan, layer, tmp_path / "b")
    assert [p.relative_to(tmp_path / "a") for p in first] == \
        [p.relative_to(tmp_path / "b") for p in second]
    tree = _tree(tmp_path / "a")
    assert tree == _tree(tmp_path / "b")
    assert {"hls/config.h", "hls/weights.h", "hls/vitfpga_engine.cpp",
            "hls/tb_vitfpga_engine.cpp", "hls/run_hls.tcl", "hls/include/vitfpga/mvu.h",
            "hls/include/vitfpga/requant.h", "hls/tb_data/input.txt"} <= set(tree)


def test_hostile_layer_name_is_sanitised(tmp_path: Path) -> None:
    name = 'blocks.0/attn "qkv"; $finish'
    layer = random_layer(32, 16, bits=4, seed=5, name=name)
    plan = dataclasses.replace(hand_plan(layer, pe=2, simd=8, rows=3), layer=name,
                               ident=identifier(name))
    written = emit_hls(plan, layer, tmp_path / "out")
    for path in written:
        text = path.read_text()
        for fragment in (name, '"qkv"', "$finish", "blocks.0/"):
            assert fragment not in text, f"{fragment!r} leaked into {path.name}"
    assert plan.ident in (tmp_path / "out" / "hls" / "weights.h").read_text()

    x = random_rows(3, 32, seed=2)
    result = run_csim(tmp_path / "out" / "hls", plan, x, linear_int(x, layer).numpy(),
                      tmp_path / "build")
    assert result.ok
    assert result.layer == name
    assert result.compared == 3 * 16


def test_packaged_test_vector_passes(tmp_path: Path) -> None:
    """The tb_data/ that emit_hls ships for Vitis passes csim as-is."""
    layer = random_layer(32, 64, bits=4, seed=9)
    plan = hand_plan(layer, pe=4, simd=8, rows=ROWS)
    emit_hls(plan, layer, tmp_path / "out")
    tb_data = tmp_path / "out" / "hls" / "tb_data"
    x, expected = read_matrix(tb_data / "input.txt"), read_matrix(tb_data / "expected.txt")
    assert x.min() < -100 and x.max() > 100  # full int8 range, not a trivial pattern
    np.testing.assert_array_equal(expected, linear_int(x, layer).numpy())
    result = run_csim(tmp_path / "out" / "hls", plan, x, expected, tmp_path / "build")
    assert result.ok


def test_csim_detects_wrong_tlast(tmp_path: Path) -> None:
    """Protocol errors are failures in their own right, even when every value is right."""
    layer = random_layer(16, 8, seed=6)
    plan = hand_plan(layer, pe=2, simd=4, rows=2)
    emit_hls(plan, layer, tmp_path / "out")
    mvu = tmp_path / "out" / "hls" / "include" / "vitfpga" / "mvu.h"
    source = mvu.read_text()
    assert "beat.last = (r == rows - 1)" in source
    mvu.write_text(source.replace("beat.last = (r == rows - 1)", "beat.last = (r == rows)"))
    x = random_rows(2, 16)
    with pytest.raises(VerificationFailed, match="TLAST"):
        run_csim(mvu.parents[2], plan, x, linear_int(x, layer).numpy(), tmp_path / "build")


_REQUANT_MAIN = """
#include <cstdio>
#include "vitfpga/requant.h"
int main() {
    long long acc, mult, shift;
    int relu;
    while (std::scanf("%lld %lld %lld %d", &acc, &mult, &shift, &relu) == 4) {
        const ap_int<32> a = acc;
        const ap_uint<31> m = mult;
        const ap_uint<6> s = shift;
        const ap_int<8> y = relu ? vitfpga::requant<true>(a, m, s)
                                 : vitfpga::requant<false>(a, m, s);
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
        want = requantize(torch.as_tensor(grid[:, 0]), torch.as_tensor(grid[:, 1]),
                          torch.as_tensor(grid[:, 2]), relu).numpy()
        np.testing.assert_array_equal(got, want)
