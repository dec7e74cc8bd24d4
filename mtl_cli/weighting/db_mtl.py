"""DB-MTL: dual-balancing multi-task learning (Lin et al., 2023)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mtl_cli.weighting.base import StepContext, require
from mtl_cli.weighting.gradients import GradientOptions, GradientWeighting, GradOn

_EPS = 1e-8


@dataclass
class DBMTLOptions(GradientOptions):
    beta: float = 0.9  # EMA rate of the gradients
    beta_sigma: float = 0.5  # the rate decays as beta / t^beta_sigma

    def check(self, method: str) -> None:
        require(
            self.grad_on is GradOn.params,
            method,
            "grad_on",
            self.grad_on.value,
            "grad_on=params (it averages parameter gradients across batches)",
        )
        require(0 <= self.beta < 1, method, "beta", self.beta, "beta in [0, 1)")
        require(self.beta_sigma >= 0, method, "beta_sigma", self.beta_sigma, "beta_sigma >= 0")


@dataclass
class DBMTLState:
    """The running average of the task gradients (k, d) and the step count."""

    average: Tensor
    steps: Tensor


def db_mtl_combine(grads: Tensor, state: DBMTLState, beta: float = 0.9, beta_sigma: float = 0.5) -> Tensor:
    """Update the gradient average in place and return the weights on it.

    ``grads`` are gradients of the log-losses (loss-scale balancing). The average moves
    with rate ``beta / t^beta_sigma``; the weights ``max_j ||avg_j|| / ||avg_i||`` give every
    task the largest task's gradient norm (gradient-magnitude balancing). The combined
    gradient is ``weights @ state.average``.
    """
    state.steps.add_(1)
    rate = beta / state.steps.to(grads.dtype).pow(beta_sigma)
    state.average.sub_(grads).mul_(rate).add_(grads)
    norms = state.average.norm(dim=1)
    return norms.max() / norms.clamp_min(_EPS)


class DBMTL(GradientWeighting):
    """Log-losses for scale balance, then every task's averaged gradient scaled to the largest norm."""

    options_class = DBMTLOptions

    def __init__(self, task_names, static_weights=None, options=None) -> None:
        super().__init__(task_names, static_weights, options)
        self.register_buffer("average", torch.zeros(0))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def transform(self, losses: Sequence[Tensor]) -> list[Tensor]:
        return [torch.log(loss + _EPS) for loss in losses]

    def combine(self, grads: Tensor, gram: Tensor, losses: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        assert isinstance(self.options, DBMTLOptions)
        if self.average.shape != grads.shape:
            self.average = torch.zeros_like(grads)
        state = DBMTLState(self.average, self.steps)
        return db_mtl_combine(grads, state, self.options.beta, self.options.beta_sigma), self.average

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        saved = state_dict.get(prefix + "average")
        if saved is not None:
            self.average = torch.zeros_like(saved, device=self.average.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
