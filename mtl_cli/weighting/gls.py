"""Geometric loss strategy (Chennupati et al., CVPR Workshops 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_cli.weighting.base import StepContext, Weighting

_EPS = 1e-12


class GeometricLossStrategy(Weighting):
    """L_total = (prod_i L_i)^(1/k), the geometric mean of the task losses.

    Its gradient is sum_i w_i dL_i with implied weights ``w_i = L_total / (k L_i)``: a
    task with a small loss gets a large weight. Losses are clamped at 1e-12 before the
    logarithm, so a task whose loss is exactly 0 gets no gradient that step.
    """

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        safe = losses.clamp_min(_EPS)
        total = torch.exp(torch.log(safe).mean())
        total.backward()
        return (total.detach() / (self.num_tasks * safe.detach())).to(losses.dtype)
