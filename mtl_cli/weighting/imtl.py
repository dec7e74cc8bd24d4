"""IMTL: impartial multi-task learning (Liu et al., ICLR 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mtl_cli.weighting.base import StepContext
from mtl_cli.weighting.gradients import GradientOptions, GradientWeighting, GradOn


@dataclass
class IMTLOptions(GradientOptions):
    # The paper computes IMTL-G on the gradient of the shared feature z.
    grad_on: GradOn = GradOn.features
    loss_scale: bool = True  # IMTL-L: learn s_i and train on exp(s_i) L_i - s_i (full IMTL)


def imtl_weights(gram: Tensor) -> Tensor:
    """IMTL-G: weights summing to 1 whose combination has equal projections on every unit task gradient.

    With ``u_i = g_i / ||g_i||`` and ``g = sum_i w_i g_i`` the conditions are
    ``g.u_1 = g.u_j`` for every j and ``sum w = 1``: k linear equations in k unknowns,
    solved on the Gram matrix (the paper's closed form). Weights may be negative.
    """
    K = gram.to(torch.float64)
    k = K.shape[0]
    norms = torch.diagonal(K).clamp_min(0).sqrt().clamp_min(1e-12)
    projections = K / norms[None, :]  # [i, j] = g_i . u_j
    system = torch.empty(k, k, dtype=K.dtype, device=K.device)
    system[: k - 1] = (projections[:, :1] - projections[:, 1:]).T
    system[k - 1] = 1.0
    rhs = torch.zeros(k, dtype=K.dtype, device=K.device)
    rhs[k - 1] = 1.0
    solution, info = torch.linalg.solve_ex(system, rhs)
    uniform = torch.full_like(solution, 1.0 / k)
    ok = (info == 0) & torch.isfinite(solution).all()
    return torch.where(ok, solution, uniform).to(gram.dtype)


class IMTL(GradientWeighting):
    """IMTL-G on the gradients of the (IMTL-L scaled) losses: no task dominates the update's direction.

    With ``loss_scale`` the scales ``s_i`` are parameters trained by the run's optimiser
    on ``exp(s_i) L_i - s_i``, which balances the loss scales (IMTL-L).
    """

    options_class = IMTLOptions

    def __init__(self, task_names, static_weights=None, options=None) -> None:
        super().__init__(task_names, static_weights, options)
        assert isinstance(self.options, IMTLOptions)
        self.log_scales = nn.Parameter(torch.zeros(self.num_tasks)) if self.options.loss_scale else None

    def transform(self, losses: Sequence[Tensor]) -> list[Tensor]:
        if self.log_scales is None:
            return list(losses)
        return [torch.exp(s) * loss - s for s, loss in zip(self.log_scales.unbind(0), losses)]

    def combine(self, grads: Tensor, gram: Tensor, losses: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        return imtl_weights(gram), grads
