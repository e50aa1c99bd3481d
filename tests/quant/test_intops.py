"""The integer primitives (numpy, `vitfpga.runtime.intmath`, re-exported by `quant.intops`)
against their float meaning, with the tolerances they promise. Inputs are torch tensors where
callers pass them: the ops take any array-like."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vitfpga.quant import intops as iop
from vitfpga.runtime.intmath import requantize

torch.set_num_threads(1)

INT64_MAX = 2**63 - 1


@given(st.lists(st.integers(0, INT64_MAX), min_size=1, max_size=64))
@settings(max_examples=200, deadline=None)
def test_isqrt_is_exact(values: list[int]) -> None:
    got = iop.isqrt(torch.tensor(values)).tolist()
    assert got == [math.isqrt(v) for v in values]


def test_isqrt_edges() -> None:
    edges = [0, 1, 2, 3, 4, 15, 16, 17, 2**31, 2**32 - 1, 2**62 - 1, 2**62, 2**62 + 1,
             3037000499**2, 3037000499**2 - 1, INT64_MAX]
    assert iop.isqrt(torch.tensor(edges)).tolist() == [math.isqrt(v) for v in edges]
    with pytest.raises(ValueError, match="negative"):
        iop.isqrt(torch.tensor([4, -1]))


@given(acc=st.integers(-(2**31), 2**31 - 1), m=st.integers(2**30, 2**31 - 1),
       s=st.integers(1, 62))
@settings(max_examples=300, deadline=None)
def test_rescale_is_the_one_rule(acc: int, m: int, s: int) -> None:
    """At 8 bits `rescale` is intmath.requantize; wider, the same value before the clamp."""
    a = torch.tensor([acc])
    assert iop.rescale(a, m, s, 8).tolist() == requantize(np.array([acc]), m, s).tolist()
    exact = (acc * m + (1 << (s - 1))) >> s  # Python integers: no overflow
    assert int(iop.rescale(a, m, s, 16)[0]) == max(-(2**15), min(2**15 - 1, exact))


@given(x=st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=32),
       y=st.integers(-128, 127), s_x=st.floats(1e-4, 1.0), s_y=st.floats(1e-3, 1.0),
       s_out=st.floats(1e-4, 1.0))
@settings(max_examples=200, deadline=None)
def test_int_add_tracks_the_real_sum_and_saturates(x: list[int], y: int, s_x: float, s_y: float,
                                                   s_out: float) -> None:
    params = iop.add_params([s_x, s_y], s_out)
    got = iop.int_add([torch.tensor(x), torch.tensor(y)], params, 16)
    real = (np.array(x) * s_x + y * s_y) / s_out
    want = np.clip(real, -(2**15), 2**15 - 1)
    # each term is rounded once (<= 1/2 LSB) and M/2^S is exact to 2^-31 relative
    assert np.all(np.abs(got - want) <= 1.0 + 1e-6 * np.abs(real))
    assert got.dtype == np.int64 and got.min() >= -(2**15) and got.max() <= 2**15 - 1
    assert np.array_equal(iop.int_add([np.array(x), y], params, 16), got)  # numpy in, the same


def test_int_add_saturates_at_the_width() -> None:
    ident = iop.add_params([1.0, 1.0], 1.0)
    big = torch.tensor([32767, -32768, 100])
    assert iop.int_add([big, big], ident, 16).tolist() == [32767, -32768, 200]
    assert iop.int_add([big, big], ident, 8).tolist() == [127, -128, 127]


@given(seed=st.integers(0, 2**31), tokens=st.integers(1, 40),
       scale=st.floats(1e-4, 0.05), spread=st.integers(10, 20000))
@settings(max_examples=100, deadline=None)
def test_softmax_tracks_float_and_rows_sum_to_prob_max(seed: int, tokens: int, scale: float,
                                                       spread: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randint(-spread, spread + 1, (6, tokens), generator=gen)
    m, s = iop.softmax_params(scale)
    p = iop.int_softmax(scores, m, s)
    ref = (127 * torch.softmax(scores.double() * scale, dim=-1)).numpy()
    assert p.dtype == np.int64 and p.min() >= 0 and p.max() <= 127
    # 1/2 LSB of rounding + 0.14% (exp ROM step) of 127: within 1
    assert np.abs(p - ref).max() <= 1.0
    assert (np.abs(p.sum(-1) - 127) <= tokens / 2 + 1).all()


def test_softmax_prob_max_255_and_extreme_gaps() -> None:
    scores = torch.tensor([[0, -(2**20), -(2**20)], [5, 5, 5]])
    m, s = iop.softmax_params(0.01)
    assert iop.int_softmax(scores, m, s, prob_max=255).tolist() == [[255, 0, 0], [85, 85, 85]]


@given(seed=st.integers(0, 2**31), dim=st.sampled_from([4, 32, 192, 384]),
       spread=st.integers(2, 30000), s_in=st.floats(1e-4, 1e-1))
@settings(max_examples=60, deadline=None)
def test_layernorm_is_float_layernorm_within_one_lsb(seed: int, dim: int, spread: int,
                                                     s_in: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(-spread, spread + 1, (5, dim), generator=gen)
    x[0] = 7  # a constant row: variance 0, only eps
    gamma = (torch.rand(dim, generator=gen, dtype=torch.float64) * 2 - 0.5).numpy()
    beta = (torch.randn(dim, generator=gen, dtype=torch.float64) * 0.3).numpy()
    def float_ln(eps: float) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x.double() * s_in, (dim,), torch.from_numpy(gamma),
                                              torch.from_numpy(beta), eps=eps)

    s_out = float(float_ln(1e-5).abs().max()) / 127 + 1e-3
    params = iop.layernorm_params(gamma, beta, 1e-5, s_in, s_out)
    got = iop.int_layernorm(x, **params.to_arrays())
    assert got.dtype == np.int64 and got.min() >= -128 and got.max() <= 127  # int8 values
    # eps is held as the integer eps * D^3 / s_in^2, so it is rounded like any parameter: on
    # inputs of a few levels (spread 2, D = 4) it rounds to 0 and the output moves by up to
    # ~1.3 LSB against eps = 1e-5. The arithmetic is judged at the eps the integers hold (a tiny
    # one where that is 0: the constant row is 0/0 otherwise).
    held = max(params.eps * s_in**2 / dim**3, 1e-300)
    # 1/2 LSB of rounding; the sqrt keeps >= 30 bits and the quotient 15 fraction bits, so the
    # rest is far below 1/2 LSB (1500 random cases measured at most 0.54)
    assert np.abs(got - (float_ln(held) / s_out).numpy()).max() <= 1.0


def test_layernorm_params_round_trip_and_bounds() -> None:
    gamma, beta = np.linspace(-2, 3, 32), np.linspace(-50, 50, 32)  # beta >> gamma
    p = iop.layernorm_params(gamma, beta, 1e-5, 0.01, 0.05)
    assert iop.LNParams.from_arrays(p.to_arrays()) == p
    assert np.abs(p.beta.astype(np.int64)).max() < 2**31 and p.gamma.dtype == np.int16


@pytest.mark.parametrize(("s_in", "s_out"), [(0.05, 0.02), (0.01, 0.1), (0.3, 0.004)])
def test_gelu_lut_is_exact(s_in: float, s_out: float) -> None:
    lut = iop.gelu_lut(s_in, s_out)
    for q in range(-128, 128):
        real = q * s_in * 0.5 * (1 + math.erf(q * s_in / math.sqrt(2)))
        want = max(-128, min(127, round(real / s_out)))  # round(): half to even, as torch's
        assert int(lut[q + 128]) == want
    x = torch.arange(-128, 128, dtype=torch.int64)
    assert iop.lut_apply(x.to(torch.int8), lut).tolist() == lut.tolist()


def test_primitives_are_deterministic_integers() -> None:
    gen = torch.Generator().manual_seed(3)
    scores = torch.randint(-999, 999, (4, 9), generator=gen)
    m, s = iop.softmax_params(0.003)
    a, b = iop.int_softmax(scores, m, s), iop.int_softmax(scores.clone(), m, s)
    assert np.array_equal(a, b) and a.dtype == np.int64
    x = torch.randint(-3000, 3000, (4, 16), generator=gen)
    p = iop.layernorm_params(np.ones(16), np.zeros(16), 1e-5, 1e-3, 0.03).to_arrays()
    assert np.array_equal(iop.int_layernorm(x, **p), iop.int_layernorm(x.clone(), **p))
    assert iop.int_layernorm(x, **p).dtype == np.int64
