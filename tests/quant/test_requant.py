"""The one rounding rule, against a direct big-integer computation: the runtime's numpy
implementation, and the linear layer built on it."""

import dataclasses
from fractions import Fraction

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vitfpga.ir import requant_params
from vitfpga.runtime import IntLinear, intmath, linear_golden


def reference(acc: int, m: int, s: int, relu: bool = False) -> int:
    """floor((acc*M + 2^(S-1)) / 2^S), clamped: Python integers never overflow."""
    y = (acc * m + (1 << (s - 1))) // (1 << s)  # // floors, as an arithmetic shift does
    return max(0 if relu else -128, min(127, y))


@given(acc=st.integers(-(2**31) + 1, 2**31 - 1), m=st.integers(2**30, 2**31 - 1),
       s=st.integers(1, 62), relu=st.booleans())
@settings(max_examples=2000, deadline=None)
def test_requantize_matches_big_integers(acc: int, m: int, s: int, relu: bool) -> None:
    np_got = intmath.requantize(np.array([acc]), np.array([m]), np.array([s]), relu)
    assert np_got.dtype == np.int64 and int(np_got[0]) == reference(acc, m, s, relu)


def test_requantize_extremes_do_not_overflow_int64() -> None:
    acc = torch.tensor([2**31 - 1, -(2**31) + 1, 0, -1])
    m = torch.full((4,), 2**31 - 1)
    for s in (1, 31, 62):
        want = [reference(int(a), 2**31 - 1, s) for a in acc]
        assert intmath.requantize(acc.numpy(), m.numpy(), np.full(4, s)).tolist() == want
        assert intmath.requantize(acc.numpy(), m.numpy(), s).tolist() == want  # S broadcasts


@given(real=st.floats(min_value=2.0**-31, max_value=2.0**29, allow_nan=False))
@settings(max_examples=500, deadline=None)
def test_requant_params_range_and_precision(real: float) -> None:
    m, s = requant_params(np.array([real]))
    assert 2**30 <= m[0] < 2**31 and 1 <= s[0] <= 62
    assert abs(Fraction(int(m[0]), 2 ** int(s[0])) - Fraction(real)) <= Fraction(real) / 2**30


def test_linear_golden_against_python_integers() -> None:
    rng = np.random.default_rng(3)
    w = rng.integers(-7, 8, size=(5, 11))
    x = rng.integers(-128, 128, size=(4, 11))
    from tests.conftest import random_layer

    layer = random_layer(11, 5, bits=4, seed=9)
    layer = dataclasses.replace(layer, weight=w)
    got = linear_golden(x, layer)
    assert got.dtype == np.int64
    for r in range(4):
        for n in range(5):
            acc = int(layer.bias[n]) + sum(int(x[r, k]) * int(w[n, k]) for k in range(11))
            assert got[r, n] == reference(acc, int(layer.multiplier[n]), int(layer.shift[n]))


def test_linear_golden_exact_on_both_matmul_paths(monkeypatch) -> None:
    """int_matmul runs in float64 only where that is provably exact; the int64 fallback gives
    the same integers. Checked against Python integers on both paths."""
    rng = np.random.default_rng(5)
    w = rng.integers(-127, 128, size=(6, 300))
    x = rng.integers(-128, 128, size=(7, 300))
    bias = rng.integers(-(2**20), 2**20, size=6)
    layer = IntLinear("l", w, bias, np.full(6, 2**30 + 12345), np.full(6, 20), False, 1.0, 1.0,
                      np.ones(6), 8)
    want = [[reference(int(bias[n]) + sum(int(a) * int(b) for a, b in zip(x[r], w[n],
                                                                        strict=True)),
                       2**30 + 12345, 20) for n in range(6)] for r in range(7)]
    assert linear_golden(x, layer).tolist() == want
    monkeypatch.setattr(intmath, "_F64_EXACT", 0)  # force the int64 loop
    assert linear_golden(x, layer).tolist() == want
    # K*max|a|*max|b| >= 2^53 (float64 would round): the exact int64 loop, whatever the limit
    monkeypatch.setattr(intmath, "_F64_EXACT", 2**53)
    big = [[2**30 + 1, -3], [-(2**30) - 7, 5]]
    want_big = [[sum(r[k] * c[k] for k in range(2)) for c in big] for r in big]
    assert intmath.int_matmul(np.array(big), np.array(big).T).tolist() == want_big
