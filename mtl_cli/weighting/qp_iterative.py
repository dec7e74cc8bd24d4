"""The task-weight problems of ``qp`` for many tasks: accelerated projected gradient with a tolerance.

The exact solvers in ``qp`` try every support, 2**k - 1 of them, which is cheap for a
handful of tasks and impossible for forty (CelebA's attributes). Here the same convex
problems are solved by FISTA (projected gradient with Nesterov momentum and a restart
when the objective rises) on the k x k Gram matrix, on the CPU in float64 (NumPy): each
iteration costs O(k^2), and a backtracking step size needs no tuning. It stops when no
weight moves by more than ``TOL`` or after ``MAX_ITER`` iterations.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

TOL = 1e-10
MAX_ITER = 5000

Objective = Callable[[np.ndarray], np.ndarray]  # (n, k) -> (n,) or (n, k): one row per problem


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto ``{w >= 0, sum w = 1}`` (sort-based)."""
    u = -np.sort(-v, axis=-1)
    css = np.cumsum(u, axis=-1) - 1.0
    index = np.arange(1, v.shape[-1] + 1)
    rho = np.maximum(((u - css / index) > 0).sum(-1, keepdims=True), 1)
    theta = np.take_along_axis(css, rho - 1, axis=-1) / rho
    return np.maximum(v - theta, 0.0)


def project_nonneg(v: np.ndarray) -> np.ndarray:
    """Projection onto ``w >= 0``."""
    return np.maximum(v, 0.0)


def fista(
    objective: Objective,
    gradient: Objective,
    project: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    lipschitz: float,
) -> np.ndarray:
    """Minimise the convex ``objective`` (one value per row) over the set ``project`` maps onto.

    ``lipschitz`` is a first guess of the gradient's Lipschitz constant; it is doubled
    while the quadratic upper bound fails (backtracking), for all rows together.
    Stops when no weight moves by more than ``TOL`` in an iteration.
    """
    w = project(start)
    y, t, step_l = w.copy(), 1.0, max(lipschitz, 1e-300)
    value = objective(w)
    for _ in range(MAX_ITER):
        grad, at_y = gradient(y), objective(y)
        while True:
            z = project(y - grad / step_l)
            d = z - y
            new = objective(z)
            bound = at_y + (grad * d).sum(-1) + 0.5 * step_l * (d * d).sum(-1)
            if np.all(new <= bound + 1e-12 * np.abs(bound)) or step_l > 1e300:
                break
            step_l *= 2.0
        if np.any(new > value + 1e-15 * np.abs(value)):  # the objective rose: restart the momentum
            if y is w:
                break
            y, t = w, 1.0
            continue
        moved = float(np.abs(z - w).max())
        t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        y = z + ((t - 1.0) / t_next) * (z - w)
        w, value, t = z, new, t_next
        if moved < TOL:
            break
    return w


def _as_numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()


def _top_eigenvalue(gram: np.ndarray) -> float:
    return max(float(np.linalg.eigvalsh(gram).max()), 1e-300)


def min_norm_simplex_iterative(gram: Tensor) -> Tensor:
    """``argmin_{w >= 0, sum w = 1} w^T K w`` for any number of tasks (see ``qp.min_norm_simplex``)."""
    K = _as_numpy(gram)
    k = K.shape[0]
    w = fista(
        lambda w: np.einsum("ni,ij,nj->n", w, K, w),
        lambda w: 2.0 * w @ K,
        project_simplex,
        np.full((1, k), 1.0 / k),
        2.0 * _top_eigenvalue(K),
    )[0]
    return torch.from_numpy(w).to(gram.device)


def nonneg_qp_iterative(gram: Tensor, linear: Tensor) -> Tensor:
    """``argmin_{w >= 0} 1/2 w^T K w + b^T w`` for each row ``b`` of ``linear`` (see ``qp.nonneg_qp``)."""
    K, b = _as_numpy(gram), _as_numpy(linear)
    w = fista(
        lambda w: 0.5 * np.einsum("ni,ij,nj->n", w, K, w) + (w * b).sum(-1),
        lambda w: w @ K + b,
        project_nonneg,
        np.zeros_like(b),
        _top_eigenvalue(K),
    )
    return torch.from_numpy(w).to(gram.device)


def cagrad_dual_iterative(gram: Tensor, q: Tensor, c: Tensor | float) -> Tensor:
    """``argmin_{w in simplex} q.w + c sqrt(w^T K w)``: CAGrad's dual for any number of tasks.

    The square root is smoothed by a shift far below the Gram matrix's scale, so the
    gradient exists where ``K w = 0``.
    """
    K, qv, cv = _as_numpy(gram), _as_numpy(q), float(c)
    k = K.shape[0]
    top = _top_eigenvalue(K)
    shift = 1e-18 * top

    def norm(w: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", w, K, w), 0.0) + shift)

    w = fista(
        lambda w: w @ qv + cv * norm(w),
        lambda w: qv + cv * (w @ K) / norm(w)[:, None],
        project_simplex,
        np.full((1, k), 1.0 / k),
        top * (1.0 + cv),
    )[0]
    return torch.from_numpy(w).to(gram.device)
