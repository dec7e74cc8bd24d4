"""UPGrad: unconflicting projection of gradients (Quinton & Rey, 2024, "Jacobian descent")."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_cli.weighting.base import StepContext
from mtl_cli.weighting.gradients import GradientWeighting
from mtl_cli.weighting.qp import nonneg_qp


def dual_cone_coefficients(gram: Tensor) -> Tensor:
    """Row i: ``e_i + w_i`` with ``J^T (e_i + w_i)`` the projection of g_i onto the dual cone.

    The dual cone of the task gradients is ``{v : <g_j, v> >= 0 for all j}``. Projecting
    ``g_i`` onto it is the QP ``min ||v - g_i||^2 s.t. J v >= 0``, whose dual gives
    ``v = J^T (e_i + w)`` with ``w = argmin_{w >= 0} 1/2 w^T K w + w^T K e_i``.
    """
    k = gram.shape[0]
    K = gram.to(torch.float64)
    duals = nonneg_qp(K, K)  # row i: linear term K e_i
    return torch.eye(k, dtype=K.dtype, device=K.device) + duals


def upgrad_weights(gram: Tensor) -> Tensor:
    """Weights of the mean of the projected task gradients (uniform preference)."""
    return dual_cone_coefficients(gram).mean(dim=0).to(gram.dtype)


class UPGrad(GradientWeighting):
    """Average of each task gradient projected onto the cone where no task's loss increases.

    The update never conflicts with any task (``<g_i, d> >= 0``) and equals the mean
    gradient when the tasks do not conflict.
    """

    def combine(self, grads: Tensor, gram: Tensor, losses: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        return upgrad_weights(gram), grads
