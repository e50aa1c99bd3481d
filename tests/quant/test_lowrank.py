"""Activation-aware low-rank factorisation against plain SVD, low rank plus sparse, gradient
compensation through the weight quantiser, and mixed-rank allocation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vitfpga.quant.lowrank import (
    Factorisation,
    allocate_ranks,
    compensate,
    factorise,
    factorise_plus_sparse,
    output_error,
    parameter_cost,
    quantise_factors,
)
from vitfpga.quant.qat import quant_linear

torch.set_num_threads(1)


def _correlated_inputs(rows: int, k: int, seed: int, draw: int = 0) -> np.ndarray:
    """Activations with a few dominant directions and uneven channel scales, as in ViTs: the
    distribution comes from `seed`, the samples from `draw`."""
    dist = np.random.default_rng(seed)
    basis, scales = dist.normal(size=(6, k)), dist.uniform(0.1, 5.0, size=k)
    rng = np.random.default_rng([seed, draw])
    x = rng.normal(size=(rows, 6)) @ basis + 0.05 * rng.normal(size=(rows, k))
    return x * scales


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_activation_aware_beats_plain_svd_at_equal_rank(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    w = rng.normal(size=(48, 32))
    x_cal = _correlated_inputs(512, 32, seed, draw=0)
    x_test = _correlated_inputs(256, 32, seed, draw=1)  # held out
    for rank in (2, 4, 8):
        plain = factorise(w, rank)
        aware = factorise(w, rank, x_cal)
        assert plain.a.shape == aware.a.shape == (32, rank)
        assert aware.b.shape == (rank, 48)
        e_plain = output_error(w, plain.weight(), x_test)
        e_aware = output_error(w, aware.weight(), x_test)
        assert e_aware < e_plain, (rank, e_aware, e_plain)


def test_full_rank_is_exact_and_bad_ranks_are_refused() -> None:
    w = np.random.default_rng(3).normal(size=(10, 6))
    x = _correlated_inputs(64, 6, 3)
    assert np.allclose(factorise(w, 6, x).weight(), w, atol=1e-8)
    with pytest.raises(ValueError, match=r"larger than the 10x6 layer allows \(max 6\)"):
        factorise(w, 7)


def test_allocation_spends_the_budget_where_the_error_is() -> None:
    shapes = {"flat": (16, 16), "steep": (16, 16)}
    spectra = {"flat": np.linspace(1.0, 0.9, 16), "steep": np.geomspace(1.0, 1e-3, 16)}
    ranks = allocate_ranks(spectra, shapes, budget=10 * 32)
    assert sum(r * 32 for r in ranks.values()) <= 10 * 32
    assert ranks["flat"] > ranks["steep"]
    with pytest.raises(ValueError, match="budget is 10"):
        allocate_ranks(spectra, shapes, budget=10)


def _spread_inputs(rows: int, k: int, seed: int, draw: int = 0) -> np.ndarray:
    """Correlated activations with a decaying (not exactly low-rank) covariance and uneven
    channel scales."""
    dist = np.random.default_rng(seed)
    mix = dist.normal(size=(k, k)) * np.geomspace(1.0, 0.02, k)[:, None]
    scales = dist.uniform(0.2, 4.0, size=k)
    return (np.random.default_rng([seed, draw]).normal(size=(rows, k)) @ mix) * scales


def _decaying_weight(n: int, k: int, seed: int, decay: float = 0.03) -> np.ndarray:
    """A random (N, K) weight whose singular values fall geometrically from 1 to `decay`."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(n, n)))
    v, _ = np.linalg.qr(rng.normal(size=(k, k)))
    m = min(n, k)
    return (u[:, :m] * np.geomspace(1.0, decay, m)) @ v[:, :m].T


def test_bad_ranks_and_densities_are_refused_in_one_line() -> None:
    w = np.zeros((32, 64))
    cases = [(lambda: factorise(w, 40),
              r"^rank 40 is larger than the 32x64 layer allows \(max 32\)$"),
             (lambda: factorise(w, 0), r"rank 0 is below 1; the 32x64 layer allows 1\.\.32"),
             (lambda: factorise_plus_sparse(w, 33, 0.1), "larger than the 32x64"),
             (lambda: factorise_plus_sparse(w, 4, 1.0), r"density 1\.0 is outside \[0, 1\)"),
             (lambda: factorise_plus_sparse(w, 4, -0.1), r"density -0\.1 is outside"),
             (lambda: compensate(w, factorise(w + 1, 2), w, 5, 0.0), "lr > 0"),
             (lambda: compensate(w, factorise(w + 1, 2), w, 5, 0.1, bits=5), "bit-width 5")]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("seed", [0, 1])
def test_plus_sparse_beats_plain_at_equal_rank(seed: int) -> None:
    w = _decaying_weight(48, 32, seed) + 0.02 * np.random.default_rng(seed).normal(size=(48, 32))
    x_cal, x_test = _correlated_inputs(512, 32, seed), _correlated_inputs(256, 32, seed, draw=1)
    for rank in (2, 4):
        fact, sparse = factorise_plus_sparse(w, rank, 0.05, x_cal)
        assert fact.rank == rank and np.count_nonzero(sparse) == round(0.05 * 48 * 32)
        plain = output_error(w, factorise(w, rank, x_cal).weight(), x_test)
        assert output_error(w, fact.weight() + sparse, x_test) < 0.9 * plain


def test_plus_sparse_wins_at_equal_cost_when_the_weight_is_low_rank_plus_spikes() -> None:
    rng = np.random.default_rng(7)
    spikes = np.where(rng.random((64, 48)) < 0.02, 5 * rng.normal(size=(64, 48)), 0.0)
    w = rng.normal(size=(64, 4)) @ rng.normal(size=(4, 48)) + spikes
    x_cal, x_test = _spread_inputs(1024, 48, 7), _spread_inputs(512, 48, 7, draw=1)
    fact, sparse = factorise_plus_sparse(w, 4, 0.02, x_cal)
    cost = parameter_cost(64, 48, 4, int(np.count_nonzero(sparse)))
    assert cost == 4 * (64 + 48) + 2 * round(0.02 * 64 * 48)  # positions are not free
    same_cost = factorise(w, cost // (64 + 48), x_cal)
    assert output_error(w, fact.weight() + sparse, x_test) < 0.25 * output_error(
        w, same_cost.weight(), x_test)


def test_plus_sparse_without_density_or_activations_is_the_plain_recipe() -> None:
    w = _decaying_weight(20, 12, 3)
    x = _correlated_inputs(128, 12, 3)
    fact, sparse = factorise_plus_sparse(w, 3, 0.0, x)
    assert not sparse.any()
    np.testing.assert_allclose(fact.weight(), factorise(w, 3, x).weight())
    fact, sparse = factorise_plus_sparse(w, 3, 0.1)  # no activations: the weight error counts
    assert np.count_nonzero(sparse) == 24
    plain = np.linalg.norm(w - factorise(w, 3).weight())
    assert np.linalg.norm(w - fact.weight() - sparse) < 0.9 * plain


def test_quantised_factors_match_the_brevitas_layers() -> None:
    fact = factorise(_decaying_weight(24, 16, 4), 6)
    for bits in (4, 8):
        quant = quantise_factors(fact, bits)
        for weight, expected in ((fact.a.T, quant.a.T), (fact.b.T, quant.b.T)):
            layer = quant_linear(weight.shape[1], weight.shape[0], "x", bits)
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(weight))
            got = layer.quant_weight().value.detach().double().numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1])
def test_compensation_reduces_the_quantised_output_error(seed: int) -> None:
    w = _decaying_weight(64, 48, seed)
    x_cal, x_test = _spread_inputs(1024, 48, seed), _spread_inputs(512, 48, seed, draw=1)
    fact = factorise(w, 16, x_cal)
    for bits in (4, 3):
        before = output_error(w, quantise_factors(fact, bits).weight(), x_test)  # held out
        tuned = compensate(w, fact, x_cal, steps=150, lr=0.01, bits=bits)
        after = output_error(w, quantise_factors(tuned, bits).weight(), x_test)
        assert after < 0.93 * before, (bits, before, after)


def test_compensation_corrects_errors_arriving_from_upstream() -> None:
    w = _decaying_weight(40, 32, 5, decay=0.2)
    x = _spread_inputs(1024, 32, 5)
    x_in = x + 0.3 * x.std(axis=0) * np.random.default_rng(5).normal(size=x.shape)  # upstream
    fact = factorise(w, 8, x)
    err = lambda f: np.linalg.norm(x @ w.T - x_in @ f.weight().T)  # noqa: E731
    assert err(compensate(w, fact, x, steps=150, lr=0.01, x_in=x_in)) < 0.9 * err(fact)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), rank=st.integers(1, 6), lr=st.sampled_from([1e-3, 0.1, 30.0]),
       bits=st.sampled_from([None, 2, 4]))
def test_compensation_never_makes_things_worse(seed: int, rank: int, lr: float,
                                               bits: int | None) -> None:
    rng = np.random.default_rng(seed)
    w, x = rng.normal(size=(10, 8)), _correlated_inputs(64, 8, seed)
    fact = factorise(w, rank) if seed % 2 else factorise(w, rank, x)
    tuned = compensate(w, fact, x, steps=10, lr=lr, bits=bits)

    def err(f: Factorisation) -> float:
        return output_error(w, (f if bits is None else quantise_factors(f, bits)).weight(), x)

    assert tuned is fact or err(tuned) <= err(fact) * (1 + 1e-4)
