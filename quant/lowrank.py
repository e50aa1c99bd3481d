"""Low-rank factorisation `W ≈ U·V`, plain or activation-aware, and mixed rank under a budget.

A linear layer `y = x·Wᵀ` (W is N x K) becomes two layers `(x·A)·B` with A (K x r) and B (r x N),
which the engine runs as two program entries (design.md §3). Activation-aware factorisation
("Memory-Efficient ViTs: activation-aware mixed-rank compression") minimises the error of the
layer's *output* on calibration inputs, `||X·Wᵀ - X·A·B||`, not of W: with the Gram matrix
`G = XᵀX = S·Sᵀ`, the best rank-r answer is the truncated SVD of `Sᵀ·Wᵀ` mapped back through
`S⁻ᵀ`. Its singular values also price each extra rank, which is what the budget allocation uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Factorisation", "allocate_ranks", "factorise", "output_error"]

_DAMPING = 1e-6  # relative ridge on the Gram matrix, so rank-deficient activations still factor


@dataclass(frozen=True)
class Factorisation:
    a: np.ndarray  # (K, r): the first layer's weight, transposed
    b: np.ndarray  # (r, N)
    spectrum: np.ndarray  # singular values of the objective, largest first (all ranks)

    @property
    def rank(self) -> int:
        return int(self.a.shape[1])

    def weight(self) -> np.ndarray:
        """The (N, K) weight the two layers compute together."""
        return (self.a @ self.b).T


def _whitener(x: np.ndarray | None, k: int) -> np.ndarray:
    """S with S·Sᵀ = XᵀX (damped); identity without calibration inputs (plain SVD)."""
    if x is None:
        return np.eye(k)
    x = np.asarray(x, dtype=np.float64).reshape(-1, k)
    gram = x.T @ x
    gram += _DAMPING * max(np.trace(gram) / k, 1e-12) * np.eye(k)
    return np.linalg.cholesky(gram)


def factorise(weight: np.ndarray, rank: int, x: np.ndarray | None = None) -> Factorisation:
    """Rank-`rank` factors of `weight` (N, K); activation-aware when calibration inputs `x`
    (..., K) are given, plain truncated SVD otherwise."""
    w = np.asarray(weight, dtype=np.float64)
    n, k = w.shape
    if not 1 <= rank <= min(n, k):
        raise ValueError(f"rank {rank} is outside 1..{min(n, k)} for a {n}x{k} layer")
    s = _whitener(x, k)
    p, sigma, qt = np.linalg.svd(s.T @ w.T, full_matrices=False)
    a = np.linalg.solve(s.T, p[:, :rank] * sigma[:rank])
    return Factorisation(a=a, b=qt[:rank], spectrum=sigma)


def output_error(weight: np.ndarray, approx: np.ndarray, x: np.ndarray) -> float:
    """Relative output error ||X·Wᵀ - X·Ŵᵀ|| / ||X·Wᵀ|| on inputs `x`."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, np.asarray(weight).shape[1])
    ref = x @ np.asarray(weight, dtype=np.float64).T
    return float(np.linalg.norm(ref - x @ np.asarray(approx, dtype=np.float64).T)
                 / max(np.linalg.norm(ref), 1e-300))


def allocate_ranks(spectra: dict[str, np.ndarray], shapes: dict[str, tuple[int, int]],
                   budget: int) -> dict[str, int]:
    """Mixed ranks within `budget` parameters: start every layer at rank 1, then give the next
    rank to the layer whose next singular value removes the most squared output error per
    parameter it costs (K + N), until the budget is spent. Greedy is optimal here because each
    layer's gains only shrink as its rank grows."""
    ranks = dict.fromkeys(spectra, 1)
    cost = {name: sum(shapes[name]) for name in spectra}
    spent = sum(cost.values())
    if spent > budget:
        raise ValueError(f"rank 1 everywhere already needs {spent} parameters, budget is {budget}")
    while True:
        best, gain = None, 0.0
        for name, sigma in spectra.items():
            r = ranks[name]
            if r < min(shapes[name]) and spent + cost[name] <= budget:
                g = float(sigma[r] ** 2) / cost[name]
                if g > gain:
                    best, gain = name, g
        if best is None:
            return ranks
        ranks[best] += 1
        spent += cost[best]
