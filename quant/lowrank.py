"""Low-rank factorisation `W ≈ U·V`, plain or activation-aware, and mixed rank under a budget.

A linear layer `y = x·Wᵀ` (W is N x K) becomes two layers `(x·A)·B` with A (K x r) and B (r x N),
which the engine runs as two program entries (design.md §3). Activation-aware factorisation
("Memory-Efficient ViTs: activation-aware mixed-rank compression") minimises the error of the
layer's *output* on calibration inputs, `||X·Wᵀ - X·A·B||`, not of W: with the Gram matrix
`G = XᵀX = S·Sᵀ`, the best rank-r answer is the truncated SVD of `Sᵀ·Wᵀ` mapped back through
`S⁻ᵀ`. Its singular values also price each extra rank, which is what the budget allocation uses.

Two refinements: `factorise_plus_sparse` adds a sparse term, `W ≈ A·B + S`, for the few large
entries a low rank cannot reach (the "sum of two tensors" structure), and `compensate` tunes A and
B by gradient on the layer's output loss, optionally through the factors' weight quantiser, so
the factors also absorb their own rounding error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vitfpga.quant.codecs import narrow_range

__all__ = ["Factorisation", "allocate_ranks", "check_rank", "compensate", "factorise",
           "factorise_plus_sparse", "output_error", "parameter_cost", "quantise_factors"]

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


def check_rank(rank: int, n: int, k: int) -> None:
    """Refuse a rank the (N, K) layer cannot have, in one line."""
    if rank > min(n, k):
        raise ValueError(f"rank {rank} is larger than the {n}x{k} layer allows (max {min(n, k)})")
    if rank < 1:
        raise ValueError(f"rank {rank} is below 1; the {n}x{k} layer allows 1..{min(n, k)}")


def factorise(weight: np.ndarray, rank: int, x: np.ndarray | None = None) -> Factorisation:
    """Rank-`rank` factors of `weight` (N, K); activation-aware when calibration inputs `x`
    (..., K) are given, plain truncated SVD otherwise."""
    w = np.asarray(weight, dtype=np.float64)
    n, k = w.shape
    check_rank(rank, n, k)
    return _factorise_whitened(w, rank, _whitener(x, k))


def _factorise_whitened(w: np.ndarray, rank: int, s: np.ndarray) -> Factorisation:
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


def parameter_cost(n: int, k: int, rank: int, nnz: int = 0) -> int:
    """Weights a factored (N, K) layer stores: A and B, plus each sparse entry as a value and a
    position (the engine needs both), so a sparse term is never priced as free."""
    return rank * (n + k) + 2 * nnz


def factorise_plus_sparse(weight: np.ndarray, rank: int, density: float,
                          x: np.ndarray | None = None, iterations: int = 8
                          ) -> tuple[Factorisation, np.ndarray]:
    """`W ≈ A·B + S` with S (N, K) keeping round(density·N·K) entries. Alternates: the best
    rank-r A·B of W - S (activation-aware with `x`), then S on the largest residuals of
    W - A·B. Returns the iterate with the lowest output error on `x` (weight error without)."""
    w = np.asarray(weight, dtype=np.float64)
    n, k = w.shape
    check_rank(rank, n, k)
    if not 0.0 <= density < 1.0:
        raise ValueError(f"density {density} is outside [0, 1): it is the fraction of the {n}x{k}"
                         " weights the sparse term keeps")
    nnz = round(density * n * k)
    s = _whitener(x, k)
    gram = s @ s.T
    fact, sparse = _factorise_whitened(w, rank, s), np.zeros_like(w)
    best = (_gram_error(w - fact.weight(), gram), fact, sparse)
    for _ in range(iterations if nnz else 0):
        sparse = _fit_sparse(w - fact.weight(), nnz, gram)
        fact = _factorise_whitened(w - sparse, rank, s)
        err = _gram_error(w - fact.weight() - sparse, gram)
        if err < best[0]:
            best = (err, fact, sparse)
    return best[1], best[2]


def _gram_error(diff: np.ndarray, gram: np.ndarray) -> float:
    """||X·Dᵀ||² from the Gram matrix, so no pass over the calibration rows."""
    return float(np.einsum("nk,kj,nj->", diff, gram, diff))


def _fit_sparse(resid: np.ndarray, nnz: int, gram: np.ndarray) -> np.ndarray:
    """The sparse term for a residual. An entry's output effect scales with its input channel's
    norm, so the support is the largest |R_ij|·sqrt(G_jj) (plain largest |R_ij| without
    activations); the kept values are then refit per row by least squares on the output, because
    correlated channels make the plain residual values the wrong ones."""
    score = np.abs(resid) * np.sqrt(np.diag(gram))
    keep = np.zeros(resid.size, dtype=bool)
    keep[np.argpartition(score.ravel(), -nnz)[-nnz:]] = True
    keep = keep.reshape(resid.shape)
    sparse = np.zeros_like(resid)
    identity = np.allclose(gram, np.diag(np.diag(gram)))
    for i in np.flatnonzero(keep.any(axis=1)):
        j = np.flatnonzero(keep[i])
        sparse[i, j] = resid[i, j] if identity else np.linalg.solve(
            gram[np.ix_(j, j)], gram[j] @ resid[i])
    return sparse


def quantise_factors(fact: Factorisation, bits: int | tuple[int, int]) -> Factorisation:
    """A and B rounded as the Brevitas layers will: per output channel (columns of A for
    u.weight = Aᵀ, columns of B for v.weight = Bᵀ), narrow-range symmetric, absmax scale."""
    bits_a, bits_b = (bits, bits) if isinstance(bits, int) else bits
    with torch.no_grad():
        a = _fake_quant(torch.from_numpy(fact.a), bits_a).numpy()
        b = _fake_quant(torch.from_numpy(fact.b), bits_b).numpy()
    return Factorisation(a=a, b=b, spectrum=fact.spectrum)


def _fake_quant(t: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-column fake quantisation with a straight-through gradient. The scale is detached:
    it follows the weights' absmax anyway, and its gradient only adds noise."""
    _, hi = narrow_range(bits)
    scale = (t.detach().abs().amax(dim=0, keepdim=True) / hi).clamp_min(1e-12)
    q = torch.clamp(torch.round(t / scale), -hi, hi) * scale
    return t + (q - t).detach()


def compensate(weight: np.ndarray, fact: Factorisation, x: np.ndarray, steps: int, lr: float,
               bits: int | tuple[int, int] | None = None, *, x_in: np.ndarray | None = None,
               sparse: np.ndarray | None = None) -> Factorisation:
    """Tune A and B with Adam on the relative output MSE `||X·Wᵀ - X̂·Q(A)·Q(B)||² / ||X·Wᵀ||²`
    (minus `X̂·Sᵀ` when the layer also has a fixed sparse term `sparse`).

    `bits` (one width, or (A's, B's)) fake-quantises the factors as `quantise_factors` does, so
    they learn around their own rounding. `x_in` are the inputs the factored layer really sees
    (X̂, e.g. those of an already compressed model), default `x`: then the layer also corrects
    the error arriving from earlier layers. `lr` is relative to each factor's RMS, since A
    carries the singular values and B does not. Returns the better of before and after."""
    if steps < 0 or lr <= 0:
        raise ValueError(f"compensation needs steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
    k = fact.a.shape[0]
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(-1, k))
    xi = xt if x_in is None else torch.as_tensor(np.asarray(x_in, dtype=np.float32).reshape(-1, k))
    if xi.shape != xt.shape:
        raise ValueError(f"x_in has {tuple(xi.shape)} rows, x has {tuple(xt.shape)}: they must"
                         " be the same calibration rows")
    target = xt @ torch.as_tensor(np.asarray(weight, dtype=np.float32)).T
    denom = target.pow(2).mean().clamp_min(1e-30)
    if sparse is not None:  # the sparse term's output is already there: A·B fits the rest
        target = target - xi @ torch.as_tensor(np.asarray(sparse, dtype=np.float32)).T
    bits_a, bits_b = (bits, bits) if bits is None or isinstance(bits, int) else bits
    for width in (bits_a, bits_b):
        if width is not None:
            narrow_range(width)  # an unsupported width fails here, in one line
    a = torch.nn.Parameter(torch.as_tensor(fact.a, dtype=torch.float32).clone())
    b = torch.nn.Parameter(torch.as_tensor(fact.b, dtype=torch.float32).clone())

    def loss() -> torch.Tensor:
        qa = a if bits_a is None else _fake_quant(a, bits_a)
        qb = b if bits_b is None else _fake_quant(b, bits_b)
        return (target - (xi @ qa) @ qb).pow(2).mean() / denom

    rms = lambda t: float(t.detach().pow(2).mean().sqrt()) or 1.0  # noqa: E731
    opt = torch.optim.Adam([{"params": [a], "lr": lr * rms(a)}, {"params": [b], "lr": lr * rms(b)}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    best_loss, best = float("inf"), fact
    for step in range(steps + 1):  # each loss is of the factors before that step's update
        value = loss()
        if float(value.detach()) < best_loss:  # quantised losses jump: keep the best, not the last
            best_loss = float(value.detach())
            best = fact if step == 0 else Factorisation(
                a=a.detach().double().numpy().copy(), b=b.detach().double().numpy().copy(),
                spectrum=fact.spectrum)
        if step < steps:
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
    return best
