"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtl_cli.weighting.base import StepContext, Weighting


class UncertaintyWeighting(Weighting):
    """L_total = sum_i w_i (exp(-s_i) L_i + s_i) with learned log-variances s_i (initially 0).

    With every static weight ``w_i = loss.weights.<task>`` at 1 (the default) this is the
    paper's objective with ``s_i = log sigma_i^2`` in the form used for classification
    losses (the constant 1/2 of the regression case is dropped, as is common). ``s`` is
    trained by the run's optimiser; its optimum is ``s_i = log L_i`` whatever ``w_i``, so
    the weight on ``L_i``, ``w_i exp(-s_i)``, settles at ``w_i / L_i``: the static weights
    keep their meaning as relative task priorities (``loss.weights.seg=2`` gives seg twice
    the weight it would have), which a factor on ``L_i`` alone would not (it cancels).
    """

    uses_static_weights = True

    def __init__(self, task_names, static_weights=None, options=None) -> None:
        super().__init__(task_names, static_weights, options)
        self.log_vars = nn.Parameter(torch.zeros(self.num_tasks))

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        static = self.static_weights.to(losses.dtype)
        (static * (torch.exp(-self.log_vars) * losses + self.log_vars)).sum().backward()
        return (static * torch.exp(-self.log_vars)).detach()
