"""CAGrad: conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mtl_cli.weighting.base import StepContext, require
from mtl_cli.weighting.gradients import GradientOptions, GradientWeighting
from mtl_cli.weighting.qp import MAX_TASKS, batched_solve, min_norm_simplex, restricted_gram, support_masks
from mtl_cli.weighting.qp_iterative import cagrad_dual_iterative


@dataclass
class CAGradOptions(GradientOptions):
    alpha: float = 0.5  # radius of the ball around the mean gradient, in units of its norm
    rescale: int = 1  # 0: none, 1: divide by 1 + alpha^2 (the authors' default), 2: by 1 + alpha

    def check(self, method: str) -> None:
        require(self.alpha >= 0, method, "alpha", self.alpha, "alpha >= 0")
        require(self.rescale in (0, 1, 2), method, "rescale", self.rescale, "rescale 0, 1 or 2")


def _dual_candidates(gram: Tensor, q: Tensor, c: Tensor) -> Tensor:
    """Stationary points of ``q.w + c sqrt(w^T K w)`` on every face of the simplex.

    On a support S with ``u = K_SS^-1 1``, ``v = K_SS^-1 q``, stationarity and
    ``sum w = 1`` give ``w = (lambda u - v) / sqrt(D)`` with ``a = 1.u``, ``b = 1.v``,
    ``e = q.v``, ``D = b^2 - a e + a c^2`` and ``lambda = (b + sqrt(D)) / a``.
    Faces with ``D <= 0`` have none (NaN rows).
    """
    k = gram.shape[0]
    masks = support_masks(k, gram.device)
    systems = restricted_gram(gram, masks)
    rhs = torch.stack([masks, q[None, :] * masks], dim=-1)  # (m, k, 2)
    solution = batched_solve(systems, rhs)
    u, v = solution[..., 0] * masks, solution[..., 1] * masks
    a, b, e = u.sum(1), v.sum(1), (v * q).sum(1)
    disc = b * b - a * e + a * c * c
    root = disc.clamp_min(0).sqrt()
    lam = (b + root) / a
    w = (lam[:, None] * u - v) / root[:, None]
    return torch.where((disc > 0)[:, None], w, torch.full_like(w, float("nan")))


def cagrad_weights(gram: Tensor, alpha: float = 0.5, rescale: int = 1) -> Tensor:
    """Weights of the CAGrad direction ``d = g0 + c g_w / ||g_w||`` (then rescaled).

    ``g0`` is the mean gradient, ``c = alpha ||g0||`` and ``w`` minimises
    ``g_w . g0 + c ||g_w||`` over the simplex (the dual of maximising the worst task's
    improvement ``min_i <g_i, d>`` within ``||d - g0|| <= c``). Solved exactly: every
    face's stationary point and the min-norm point are compared; beyond ``MAX_TASKS``
    tasks iteratively (``qp_iterative``).
    """
    k = gram.shape[0]
    K = gram.to(torch.float64)
    mean = torch.full((k,), 1.0 / k, dtype=K.dtype, device=K.device)
    q = K @ mean
    c = alpha * (mean @ q).clamp_min(0).sqrt()
    if k > MAX_TASKS:
        candidates = cagrad_dual_iterative(K, q, c)[None]
    else:
        candidates = torch.cat([_dual_candidates(K, q, c), min_norm_simplex(K)[None]])
    ok = torch.isfinite(candidates).all(1) & (candidates >= -1e-9).all(1)
    safe = torch.where(ok[:, None], candidates, torch.zeros_like(candidates))
    norms = torch.einsum("mi,ij,mj->m", safe, K, safe).clamp_min(0).sqrt()
    objective = torch.where(ok, safe @ q + c * norms, torch.full_like(norms, float("inf")))
    best = objective.argmin()
    w, gw_norm = safe[best].clamp_min(0), norms[best]
    weights = mean + (c / gw_norm.clamp_min(1e-12)) * w
    weights = torch.where(gw_norm > 1e-12, weights, mean)
    divisor = {0: 1.0, 1: 1.0 + alpha**2, 2: 1.0 + alpha}[rescale]
    return (weights / divisor).to(gram.dtype)


class CAGrad(GradientWeighting):
    """Descend on the average loss while maximising the worst task's improvement nearby."""

    options_class = CAGradOptions

    def combine(self, grads: Tensor, gram: Tensor, losses: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        assert isinstance(self.options, CAGradOptions)
        return cagrad_weights(gram, self.options.alpha, self.options.rescale), grads
