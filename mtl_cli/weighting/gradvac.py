"""Gradient Vaccine (Wang, Tsvetkov, Firat & Cao, ICLR 2021)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mtl_cli.weighting.base import StepContext, require
from mtl_cli.weighting.gradients import GradientOptions, GradientWeighting
from mtl_cli.weighting.pcgrad import random_orders


@dataclass
class GradVacOptions(GradientOptions):
    beta: float = 0.01  # EMA rate of the cosine targets (the paper's beta)

    def check(self, method: str) -> None:
        require(0 <= self.beta <= 1, method, "beta", self.beta, "beta in [0, 1]")


def gradvac_coefficients(gram: Tensor, orders: Tensor, targets: Tensor, beta: float) -> Tensor:
    """Adjusted gradients as combinations of the originals, ``P = C @ G``; returns C (k, k).

    Task i visits the others in the order ``orders[i]``. When the cosine ``phi`` between
    its current gradient and ``g_j`` is below the target ``phi_hat = targets[i, j]``, it
    adds the multiple of ``g_j`` that raises the cosine to exactly ``phi_hat``. The
    targets (state) are then moved towards the observed cosines in place:
    ``phi_hat <- (1 - beta) phi_hat + beta phi``.
    """
    k = gram.shape[0]
    rows = torch.arange(k, device=gram.device)
    coef = torch.eye(k, dtype=gram.dtype, device=gram.device)
    norms = torch.diagonal(gram).clamp_min(0).sqrt().clamp_min(1e-12)
    for r in range(k):
        j = orders[:, r]
        cross = coef @ gram
        own_norm = torch.einsum("ij,ij->i", cross, coef).clamp_min(0).sqrt().clamp_min(1e-12)
        phi = (cross[rows, j] / (own_norm * norms[j])).clamp(-1.0, 1.0)
        target = targets[rows, j].to(gram.dtype)
        other = j != rows
        root_target = (1 - target * target).clamp_min(1e-12).sqrt()
        add = own_norm * (target * (1 - phi * phi).clamp_min(0).sqrt() - phi * root_target) / (norms[j] * root_target)
        add = torch.where(other & (phi < target), add, torch.zeros_like(add))
        coef = coef + add[:, None] * torch.nn.functional.one_hot(j, k).to(gram.dtype)
        updated = ((1 - beta) * target + beta * phi).to(targets.dtype)
        targets[rows, j] = torch.where(other, updated, targets[rows, j])
    return coef


def gradvac_weights(
    gram: Tensor,
    targets: Tensor,
    beta: float = 0.01,
    orders: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Weights of the sum of the adjusted gradients; updates ``targets`` (k, k) in place."""
    if orders is None:
        orders = random_orders(gram.shape[0], gram.device, generator)
    return gradvac_coefficients(gram, orders, targets, beta).sum(dim=0)


class GradVac(GradientWeighting):
    """Like PCGrad, but pulls each pair of task gradients towards their running-average cosine.

    Applied to the whole shared gradient (one group); the targets start at 0, for which
    the first steps behave like PCGrad.
    """

    options_class = GradVacOptions

    def __init__(self, task_names, static_weights=None, options=None) -> None:
        super().__init__(task_names, static_weights, options)
        self.register_buffer("targets", torch.zeros(self.num_tasks, self.num_tasks))

    def combine(self, grads: Tensor, gram: Tensor, losses: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        assert isinstance(self.options, GradVacOptions)
        return gradvac_weights(gram, self.targets, self.options.beta), grads
