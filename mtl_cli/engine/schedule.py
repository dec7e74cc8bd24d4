"""Learning-rate schedules that advance with every optimiser step rather than every epoch."""

from __future__ import annotations

import math
from typing import Any

import torch


class WarmupCosine:
    """The learning-rate factor at optimiser step ``step``: linear warm-up, then cosine decay to 0.

    Over the first ``warmup`` steps the factor rises linearly to 1 (reached at step
    ``warmup``); over the remaining steps up to ``total`` it follows half a cosine to 0.
    The warm-up takes at most a fifth of the run, so a short run still spends most of its
    steps near the full learning rate and decays smoothly.
    """

    def __init__(self, total: int, warmup: int = 0) -> None:
        self.total = max(int(total), 1)
        self.warmup = min(max(int(warmup), 0), self.total // 5)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        progress = min((step - self.warmup) / max(self.total - self.warmup, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


class PerStepSchedule:
    """A ``LambdaLR`` advanced by every optimiser step (through a step hook).

    The trainer calls ``step()`` once per epoch, which is a no-op here: the schedule has
    already moved with each optimiser step. ``state_dict`` holds the step count, so a
    resumed run continues the schedule where it stopped.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: WarmupCosine) -> None:
        self.inner = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        self._hook = optimizer.register_step_post_hook(lambda *_: self.inner.step())

    def step(self) -> None:
        """Epoch end: nothing to do (the rate follows the optimiser steps)."""

    def get_last_lr(self) -> list[float]:
        """The current learning rate of every parameter group."""
        return self.inner.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)
