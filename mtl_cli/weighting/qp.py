"""Small quadratic programs over task weights, solved exactly on the device.

The gradient methods reduce to problems on the k x k Gram matrix ``K = G G^T`` of the
task gradients, with k the number of tasks (a handful). With so few unknowns the
optimum can be found exactly by trying every active set (support) at once: on a
support S the optimum solves a small linear system, every candidate is solved in one
batched call, and the best feasible candidate wins. No iteration count to tune, no
host synchronisation, no external solver. Everything here runs in float64. Beyond
``MAX_TASKS`` tasks the solvers hand over to the iterative ones of ``qp_iterative``.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from mtl_cli.weighting.qp_iterative import min_norm_simplex_iterative, nonneg_qp_iterative

MAX_TASKS = 12  # 2**12 - 1 supports; more tasks are solved iteratively (``qp_iterative``)
_FEASIBLE_TOL = 1e-9


@lru_cache(maxsize=32)
def support_masks(k: int, device: torch.device) -> Tensor:
    """Every non-empty subset of ``range(k)`` as a (2**k - 1, k) float64 0/1 matrix."""
    if k > MAX_TASKS:
        raise ValueError(f"the exact task-weight solvers handle at most {MAX_TASKS} tasks, got {k}")
    codes = torch.arange(1, 2**k, device=device)
    bits = torch.arange(k, device=device)
    return ((codes[:, None] >> bits) & 1).to(torch.float64)


def batched_solve(systems: Tensor, rhs: Tensor) -> Tensor:
    """Solve ``systems @ x = rhs`` for a batch of small matrices by Gauss-Jordan elimination.

    No pivoting: every leading principal minor must be non-zero, which holds for the
    positive definite matrices and the bordered systems ``[K 1; 1^T 0]`` (K positive
    definite) used here; a failed system gives non-finite values, which callers treat
    as infeasible. Elementwise tensor ops only: LAPACK's batched LU parallelises over
    the batch with OpenMP, which costs milliseconds for matrices this small when the
    CPU is busy, while these few tiny ops stay on the calling thread.
    """
    a, b = systems.clone(), rhs.clone()
    n = a.shape[-1]
    for j in range(n):
        pivot = a[..., j : j + 1, j : j + 1]
        row_a, row_b = a[..., j : j + 1, :] / pivot, b[..., j : j + 1, :] / pivot
        factor = a[..., :, j : j + 1].clone()
        factor[..., j, :] = 0.0
        a = a - factor * row_a
        b = b - factor * row_b
        a[..., j : j + 1, :] = row_a
        b[..., j : j + 1, :] = row_b
    return b


def _ridge(gram: Tensor) -> Tensor:
    """A tiny diagonal shift that keeps every principal submatrix invertible."""
    scale = torch.diagonal(gram).mean().abs()
    return 1e-10 * scale + 1e-30


def restricted_gram(gram: Tensor, masks: Tensor) -> Tensor:
    """K restricted to each support: K_SS on the support, identity elsewhere (batched)."""
    outer = masks[:, :, None] * masks[:, None, :]
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return gram * outer + eye * (1.0 - masks)[:, None, :] + _ridge(gram) * eye * masks[:, None, :]


def min_norm_simplex(gram: Tensor) -> Tensor:
    """``argmin_{w >= 0, sum w = 1} w^T K w``: the min-norm point of the gradients' convex hull.

    On a support S the minimiser solves ``[K_SS 1; 1^T 0] [w; nu] = [0; 1]``.
    """
    gram = gram.to(torch.float64)
    k = gram.shape[0]
    if k > MAX_TASKS:
        return min_norm_simplex_iterative(gram)
    masks = support_masks(k, gram.device)
    m = masks.shape[0]
    system = torch.zeros(m, k + 1, k + 1, dtype=gram.dtype, device=gram.device)
    system[:, :k, :k] = restricted_gram(gram, masks)
    system[:, :k, k] = masks
    system[:, k, :k] = masks
    rhs = torch.zeros(m, k + 1, 1, dtype=gram.dtype, device=gram.device)
    rhs[:, k] = 1.0
    w = batched_solve(system, rhs)[:, :k, 0] * masks
    objective = torch.einsum("mi,ij,mj->m", w, gram, w)
    feasible = (w >= -_FEASIBLE_TOL).all(dim=1) & torch.isfinite(objective)
    best = torch.where(feasible, objective, torch.full_like(objective, float("inf"))).argmin()
    w = w[best].clamp_min(0.0)
    return w / w.sum().clamp_min(1e-30)


def nonneg_qp(gram: Tensor, linear: Tensor) -> Tensor:
    """``argmin_{w >= 0} 1/2 w^T K w + b^T w`` for each row ``b`` of ``linear`` (n, k) -> (n, k).

    On a support S the minimiser solves ``K_SS w_S = -b_S``; the empty support (w = 0)
    is a candidate too.
    """
    gram = gram.to(torch.float64)
    linear = linear.to(torch.float64)
    k = gram.shape[0]
    if k > MAX_TASKS:
        return nonneg_qp_iterative(gram, linear)
    masks = support_masks(k, gram.device)
    systems = restricted_gram(gram, masks)  # (m, k, k)
    rhs = -(linear[:, None, :] * masks[None]).unsqueeze(-1)  # (n, m, k, 1)
    w = batched_solve(systems.expand(linear.shape[0], *systems.shape), rhs)[..., 0] * masks  # (n, m, k)
    objective = 0.5 * torch.einsum("nmi,ij,nmj->nm", w, gram, w) + torch.einsum("nmi,ni->nm", w, linear)
    feasible = (w >= -_FEASIBLE_TOL).all(dim=-1) & torch.isfinite(objective)
    objective = torch.where(feasible, objective, torch.full_like(objective, float("inf")))
    best_value, best = objective.min(dim=1)
    chosen = w.gather(1, best[:, None, None].expand(-1, 1, k))[:, 0].clamp_min(0.0)
    # The empty support: w = 0 with objective 0.
    return torch.where((best_value < 0)[:, None], chosen, torch.zeros_like(chosen))
