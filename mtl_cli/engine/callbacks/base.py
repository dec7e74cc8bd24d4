"""What the training loop tells its callbacks, and when.

The loop calls, in list order: ``on_fit_start`` once; ``on_epoch_start`` before each
epoch's first batch; ``on_step_end`` at log points only (every ``log_every_n_steps``
optimiser steps and at ``max_steps``), so nothing runs on the other steps;
``on_train_epoch_end`` after the epoch's last batch (before the scheduler step and
validation); ``on_epoch_end`` after validation; ``on_stop`` when a stop signal is acted
on. ``on_fit_end`` and ``on_exception`` run in reverse list order (the first callback
started is the last to finish). ``on_run_end`` runs last, once the run's final records
(pictures, summary.json) are written, whether the run completed or not: ``mtl_cli.engine.run``
calls it through ``Trainer.end_run``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mtl_cli.engine.state import EpochProgress
    from mtl_cli.engine.trainer import Trainer


@dataclass(frozen=True)
class StepRecord:
    """A log point: the latest optimiser step, with values already on the host."""

    step: int  # optimiser steps so far (over the run)
    epoch: int
    batches: int  # loader batches done in this epoch
    losses: dict[str, float]  # this rank's mean loss per task over the epoch so far
    weights: dict[str, float]  # the weights of this step's batch
    report: dict[str, float]  # what the weighting method reports (``Weighting.step_report``)
    lr: float
    seconds: float  # training time in this epoch so far
    images_per_s: float | None  # over all ranks, in this epoch so far


@dataclass(frozen=True)
class EpochRecord:
    """An epoch trained and validated."""

    epoch: int
    step: int
    losses: dict[str, float]  # mean train loss per task (over all ranks)
    weights: dict[str, float]  # mean weight per task (over all ranks)
    lr: float  # the learning rate at the end of the epoch's training (per-step schedules move within it)
    metrics: dict[str, dict[str, float]]  # validation ``{task: {metric: value}}``
    seconds: float  # training and validation
    images_per_s: float | None  # training images per second over all ranks
    improved: bool  # the monitored metric is the best so far


class Callback:
    """A hook into the training loop; every method does nothing unless overridden.

    ``state_dict`` returns what a resumed run needs (``None`` for nothing; saved in the
    checkpoint under the callback's ``key``), ``load_state_dict`` takes it back.
    """

    @property
    def key(self) -> str:
        """The name of this callback's state in a checkpoint."""
        return type(self).__name__

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch of ``fit``."""

    def on_epoch_start(self, trainer: Trainer, epoch: int, batches_done: int) -> None:
        """Before the first batch of ``epoch`` (``batches_done`` > 0 when resuming mid-epoch)."""

    def on_step_end(self, trainer: Trainer, step: StepRecord) -> None:
        """At a log point."""

    def on_train_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        """After the last training batch of ``epoch``, before validation."""

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        """After validation of ``record.epoch``."""

    def on_stop(self, trainer: Trainer, signum: int, progress: EpochProgress | None) -> None:
        """A stop signal is acted on, mid-epoch (``progress``) or after an epoch (``None``)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch of ``fit``."""

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        """``fit`` is ending with ``exc`` (also ``TrainingInterrupted``)."""

    def on_run_end(self, trainer: Trainer, summary: Mapping[str, Any]) -> None:
        """The run's records are written; ``summary`` is its summary.json (``status`` says how it ended)."""

    def state_dict(self) -> Mapping[str, Any] | None:
        """Resumable state, or ``None``."""
        return None

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back what ``state_dict`` returned."""
