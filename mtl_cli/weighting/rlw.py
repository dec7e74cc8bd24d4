"""Random loss weighting (Lin et al., TMLR 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_cli.weighting.base import StepContext, Weighting


class RandomLossWeighting(Weighting):
    """Fresh weights every step: ``softmax(z)`` with ``z ~ N(0, I)`` (the paper's default).

    Drawn on the losses' device from the global generator, so ``trainer.seed`` fixes them.
    """

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        weights = torch.softmax(torch.randn(self.num_tasks, device=losses.device, dtype=losses.dtype), dim=0)
        (weights * losses).sum().backward()
        return weights
