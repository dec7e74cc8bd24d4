"""Issue 12.7: MGDA, CAGrad and UPGrad for more tasks than the exact solvers enumerate (CelebA's 40).

The iterative solvers are checked against the exact ones where both run (random and
nearly collinear gradients), then run at 40 tasks where only they can.
"""

from __future__ import annotations

import pytest
import torch

from mtl_cli.weighting import cagrad as cagrad_module
from mtl_cli.weighting import qp
from mtl_cli.weighting.cagrad import cagrad_weights
from mtl_cli.weighting.mgda import mgda_weights
from mtl_cli.weighting.qp_iterative import (
    cagrad_dual_iterative,
    min_norm_simplex_iterative,
    nonneg_qp_iterative,
    project_simplex,
)
from mtl_cli.weighting.upgrad import upgrad_weights


def _gram(k: int, seed: int, collinear: bool = False) -> torch.Tensor:
    g = torch.randn(k, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    if collinear:
        g[1] = 0.999 * g[0] + 1e-3 * g[1]
    return g @ g.T


CASES = [(k, seed, collinear) for k in (2, 5, 9) for seed in (0, 1) for collinear in (False, True)]


@pytest.mark.parametrize("k, seed, collinear", CASES)
def test_iterative_solvers_reach_the_exact_optimum(k, seed, collinear):
    K = _gram(k, seed, collinear)
    exact, found = qp.min_norm_simplex(K), min_norm_simplex_iterative(K)
    assert abs(float(found @ K @ found - exact @ K @ exact)) <= 1e-9 * float(exact @ K @ exact) + 1e-12
    assert float(found.min()) >= 0 and abs(float(found.sum()) - 1) < 1e-12
    b = torch.randn(k, k, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 7)) @ K / 10
    exact_w, found_w = qp.nonneg_qp(K, b), nonneg_qp_iterative(K, b)

    def objective(w: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.einsum("ni,ij,nj->n", w, K, w) + (w * b).sum(-1)

    # The exact solver itself carries a 1e-10 ridge; the iterative one is never worse beyond that.
    assert float((objective(found_w) - objective(exact_w)).max()) <= 1e-8 * float(K.diagonal().mean())
    assert float(found_w.min()) >= 0


@pytest.mark.parametrize("k, seed, collinear", CASES)
def test_iterative_cagrad_matches_the_exact_one(k, seed, collinear, monkeypatch):
    K = _gram(k, seed, collinear)
    exact = cagrad_weights(K, alpha=0.5)
    monkeypatch.setattr(cagrad_module, "MAX_TASKS", 0)  # force the iterative path at this size
    found = cagrad_weights(K, alpha=0.5)
    direction = lambda w: float(w @ K @ w)  # noqa: E731  ||d||^2 of the combined direction
    assert abs(direction(found) - direction(exact)) <= 1e-6 * direction(exact)
    worst = lambda w: float((K @ w).min())  # noqa: E731  the worst task's improvement <g_i, d>
    assert worst(found) >= worst(exact) - 1e-6 * abs(worst(exact)) - 1e-12


def test_dual_iterative_is_on_the_simplex():
    K = _gram(6, 3)
    mean = torch.full((6,), 1 / 6, dtype=torch.float64)
    w = cagrad_dual_iterative(K, K @ mean, 0.4)
    assert float(w.min()) >= 0 and abs(float(w.sum()) - 1) < 1e-12
    rows = project_simplex(torch.tensor([[3.0, -1.0, 0.5], [0.2, 0.2, 0.2]], dtype=torch.float64).numpy())
    assert rows.min() >= 0 and abs(rows.sum(1) - 1).max() < 1e-12


def test_forty_tasks_get_weights_from_every_solver_method():
    """The CelebA per_attribute setting: the exact solvers would need 2**40 supports."""
    K = _gram(40, 0)
    with pytest.raises(ValueError, match="at most 12"):
        qp.support_masks(40, K.device)
    for weights in (mgda_weights(K), cagrad_weights(K), upgrad_weights(K)):
        assert weights.shape == (40,) and bool(torch.isfinite(weights).all()) and float(weights.min()) >= -1e-12
    w = mgda_weights(K)
    # Optimality of the min-norm point: no vertex improves on it (Frank-Wolfe gap ~ 0).
    gap = float(w @ K @ w - (K @ w).min())
    assert gap <= 1e-6 * float(w @ K @ w) + 1e-12
