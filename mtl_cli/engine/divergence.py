"""Divergence that stays finite: a task loss far above where it started, for several log points in a row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

FACTOR = 100.0  # a loss this many times its first value ...
FLOOR = 0.1  # ... (a first value below this counts as this, so tiny starting losses do not trip it)
PATIENCE = 3  # ... at this many log points in a row has diverged


@dataclass
class Diverged:
    """What the watch saw when it gave up: the task, its loss now and at the start, where."""

    task: str
    loss: float
    first: float
    points: int


class DivergenceWatch:
    """Compares each task's loss at log points with its loss on the first batch the loop trained.

    ``start`` keeps the first batch's losses on the device (no synchronisation);
    ``observe`` is called where the loop reads host values anyway. A task whose loss is
    above ``FACTOR`` times its first value (at least ``FLOOR``) at ``PATIENCE`` log points
    in a row has diverged; at the end of an epoch one such point is enough, so that no
    checkpoint is saved of a diverged model. ``reduce`` averages a tensor over the ranks
    (in place), so that under DDP every rank decides alike.
    """

    def __init__(self, task_names: list[str], reduce: Callable[[Tensor], Tensor] = lambda t: t) -> None:
        self.task_names = task_names
        self.reduce = reduce
        self.first: Tensor | None = None
        self._first_reduced = False
        self.streak = [0] * len(task_names)

    def start(self, losses: Tensor) -> None:
        """Remember the losses of the first batch (once per ``fit``)."""
        if self.first is None:
            self.first = losses.detach().clone()

    def observe(self, losses: Tensor, epoch_end: bool = False) -> Diverged | None:
        """Count the tasks above the threshold now; return the first that has diverged, if any."""
        if self.first is None:
            return None
        if not self._first_reduced:
            self.reduce(self.first)
            self._first_reduced = True
        now, first = self.reduce(losses.detach().clone()).tolist(), self.first.tolist()
        for index, (name, value, start) in enumerate(zip(self.task_names, now, first)):
            over = value > FACTOR * max(start, FLOOR)
            self.streak[index] = self.streak[index] + 1 if over else 0
            if over and (self.streak[index] >= PATIENCE or epoch_end):
                return Diverged(name, value, start, self.streak[index])
        return None
