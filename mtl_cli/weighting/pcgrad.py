"""PCGrad: gradient surgery (Yu et al., NeurIPS 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_cli.weighting.base import StepContext
from mtl_cli.weighting.gradients import GradientWeighting


def random_orders(k: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """Row i: an independent random permutation of ``range(k)``, the order task i visits the others."""
    return torch.rand(k, k, device=device, generator=generator).argsort(dim=1)


def pcgrad_coefficients(gram: Tensor, orders: Tensor) -> Tensor:
    """Projected gradients as combinations of the originals: ``P = C @ G``, returns C (k, k).

    Task i walks through the other tasks in the order ``orders[i]``; whenever its
    current gradient conflicts with task j's (negative inner product) it drops the
    component along ``g_j``. Everything happens on the Gram matrix, so the cost does not
    grow with the number of parameters.
    """
    k = gram.shape[0]
    rows = torch.arange(k, device=gram.device)
    coef = torch.eye(k, dtype=gram.dtype, device=gram.device)
    sq_norms = torch.diagonal(gram).clamp_min(1e-20)
    for r in range(k):
        j = orders[:, r]
        dots = (coef @ gram)[rows, j]  # <P_i, g_j>
        step = torch.where(j == rows, torch.zeros_like(dots), dots.clamp(max=0.0) / sq_norms[j])
        coef = coef - step[:, None] * torch.nn.functional.one_hot(j, k).to(gram.dtype)
    return coef


def pcgrad_weights(gram: Tensor, orders: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Weights of the sum of the projected gradients (random orders unless given)."""
    if orders is None:
        orders = random_orders(gram.shape[0], gram.device, generator)
    return pcgrad_coefficients(gram, orders).sum(dim=0)


class PCGrad(GradientWeighting):
    """Sum of the task gradients after projecting away each pairwise conflict (random order per step)."""

    def combine(self, grads: Tensor, gram: Tensor, losses: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        return pcgrad_weights(gram), grads
