"""Dynamic weight average (Liu, Johns & Davison, CVPR 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mtl_cli.weighting.base import MethodOptions, StepContext, Weighting, require


@dataclass
class DWAOptions(MethodOptions):
    temperature: float = 2.0  # the paper's T

    def check(self, method: str) -> None:
        require(self.temperature > 0, method, "temperature", self.temperature, "a temperature > 0")


def dwa_weights(previous: Tensor, before: Tensor, temperature: float) -> Tensor:
    """``w_i = k softmax_i(r / T)`` with ``r_i = L_i(t-1) / L_i(t-2)``, the epoch-mean loss ratio."""
    ratios = previous / before.clamp_min(1e-12)
    return previous.numel() * torch.softmax(ratios / temperature, dim=0)


class DynamicWeightAverage(Weighting):
    """A task whose loss fell less over the last epoch gets more weight in the next one.

    The weights change once per epoch (from the epoch-mean training losses); they are 1
    for the first two epochs, as in the paper.
    """

    options_class = DWAOptions

    def __init__(self, task_names, static_weights=None, options=None) -> None:
        super().__init__(task_names, static_weights, options)
        self.register_buffer("history", torch.zeros(2, self.num_tasks))  # epoch means t-2, t-1
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("weights", torch.ones(self.num_tasks))

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        weights = self.weights.to(losses.dtype)
        (weights * losses).sum().backward()
        return weights

    def epoch_end(self, mean_losses: Tensor) -> None:
        self.history[0] = self.history[1]
        self.history[1] = mean_losses.detach().to(self.history)
        self.epochs_seen += 1
        assert isinstance(self.options, DWAOptions)
        new = dwa_weights(self.history[1], self.history[0], self.options.temperature)
        self.weights.copy_(torch.where(self.epochs_seen >= 2, new, torch.ones_like(new)))
