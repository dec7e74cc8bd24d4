"""The interface every loss- or gradient-balancing method implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import Tensor, nn


@dataclass
class StepContext:
    """What a weighting method may use besides the losses during one training step."""

    shared_params: Sequence[nn.Parameter]
    features: Tensor | None
    step: int
    epoch: int


class Weighting(nn.Module):
    """Turns the per-task losses of one step into gradients on the model's parameters.

    ``backward(losses, ctx)`` receives the task losses as a vector in task order, runs the
    backward pass(es) and returns the task weights it used (detached, shape ``(k,)``) for
    logging. Methods with learnable state register it as parameters or buffers, so it is
    optimised and checkpointed with the model. ``needs_features`` asks the trainer for the
    shared representation in ``ctx.features``.
    """

    needs_features: ClassVar[bool] = False

    def __init__(self, task_names: Sequence[str], static_weights: Sequence[float]) -> None:
        super().__init__()
        self.task_names = list(task_names)
        self.register_buffer("static_weights", torch.tensor(list(static_weights), dtype=torch.float32))

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def epoch_end(self, mean_losses: Tensor) -> None:
        """Called with the epoch's mean training loss per task (for methods that need history)."""
