"""Activation-aware low-rank factorisation against plain SVD, and mixed-rank allocation."""

import numpy as np
import pytest

from vitfpga.quant.lowrank import allocate_ranks, factorise, output_error


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
    with pytest.raises(ValueError, match=r"outside 1\.\.6"):
        factorise(w, 7)


def test_allocation_spends_the_budget_where_the_error_is() -> None:
    shapes = {"flat": (16, 16), "steep": (16, 16)}
    spectra = {"flat": np.linspace(1.0, 0.9, 16), "steep": np.geomspace(1.0, 1e-3, 16)}
    ranks = allocate_ranks(spectra, shapes, budget=10 * 32)
    assert sum(r * 32 for r in ranks.values()) <= 10 * 32
    assert ranks["flat"] > ranks["steep"]
    with pytest.raises(ValueError, match="budget is 10"):
        allocate_ranks(spectra, shapes, budget=10)
