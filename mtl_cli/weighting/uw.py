"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtl_cli.weighting.base import StepContext, Weighting


class UncertaintyWeighting(Weighting):
    """L_total = sum_i exp(-s_i) L_i + s_i with learned log-variances s_i (initially 0).

    This is the paper's objective with ``s_i = log sigma_i^2`` in the form used for
    classification losses (the constant 1/2 of the regression case is dropped, as is
    common). The weights are ``exp(-s_i)``; ``s`` is trained by the run's optimiser.
    """

    def __init__(self, task_names, static_weights=None, options=None) -> None:
        super().__init__(task_names, static_weights, options)
        self.log_vars = nn.Parameter(torch.zeros(self.num_tasks))

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        weights = torch.exp(-self.log_vars)
        (weights * losses + self.log_vars).sum().backward()
        return weights.detach()
