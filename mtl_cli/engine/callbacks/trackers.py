"""Forwarding the run to experiment trackers (TensorBoard, MLflow, W&B) on the main rank."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtl_cli.engine.baselines import Baselines
from mtl_cli.engine.callbacks.base import Callback, EpochRecord, StepRecord
from mtl_cli.engine.records import flatten_metrics
from mtl_cli.loggers import GuardedLogger, RunInfo, Scalar

if TYPE_CHECKING:
    from mtl_cli.engine.trainer import Trainer

# The run directory's files attached to the tracker runs at the end, when they exist.
ARTIFACTS = ("val_predictions.png", "weights.png", "relations.png", "curves.png", "summary.json")


class TrackerLogging(Callback):
    """Logs to each tracker in ``loggers`` (each guarded: a failing tracker is one warning).

    At log points: ``train/<task>_loss`` (the epoch's running mean), ``weight/<task>`` and what
    the weighting method reports (gradient cosines ``cos/...``). After each epoch: every
    validation metric ``val/<task>.<metric>``, ``lr``, ``images_per_s``, ``epoch`` and, with
    ``baselines``, ``val/delta_m``. At the end of the run (``on_run_end``): ``params`` (the
    flattened config) with the final metrics, the run directory's pictures and summary.json,
    then the tracker runs are closed. Every value is logged at the global optimiser step.
    The checkpoint keeps each tracker's run id, so ``trainer.resume=`` continues the same runs.
    """

    def __init__(
        self,
        loggers: Sequence[GuardedLogger],
        run: RunInfo,
        params: Mapping[str, Scalar],
        baselines: Baselines | None = None,
    ) -> None:
        self.loggers = list(loggers)
        self.run = run
        self.params = dict(params)
        self.baselines = baselines
        self.resume: dict[str, Any] = {}

    def on_fit_start(self, trainer: Trainer) -> None:
        resume_step = trainer.state.step if self.resume else None
        for logger in self.loggers:
            logger.start(replace(self.run, resume=self.resume.get(logger.name), resume_step=resume_step))

    def on_step_end(self, trainer: Trainer, step: StepRecord) -> None:
        values = {f"train/{task}_loss": loss for task, loss in step.losses.items()}
        values.update({f"weight/{task}": weight for task, weight in step.weights.items()})
        values.update(step.report)
        self._log(values, step.step)

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        values: dict[str, float] = {"epoch": record.epoch, "lr": record.lr, **flatten_metrics(record.metrics)}
        if record.images_per_s is not None:
            values["images_per_s"] = record.images_per_s
        if self.baselines is not None:
            delta = self.baselines.delta_m(record.metrics)
            if delta is not None:
                values["val/delta_m"] = delta
        self._log(values, record.step)

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        self._close(failed=True)

    def on_run_end(self, trainer: Trainer, summary: Mapping[str, Any]) -> None:
        if not self.loggers:
            return
        final = flatten_metrics(summary.get("metrics") or {})
        if self.baselines is not None and summary.get("metrics"):
            delta = self.baselines.delta_m(summary["metrics"])
            if delta is not None:
                final["val/delta_m"] = delta
        for logger in self.loggers:
            logger.log_hparams(self.params, final)
        run_dir = Path(self.run.run_dir)
        for name in ARTIFACTS:
            if (run_dir / name).is_file():
                for logger in self.loggers:
                    logger.log_artifact(run_dir / name, step=trainer.state.step)
        self._close(failed=summary.get("status") != "completed")

    def state_dict(self) -> Mapping[str, Any] | None:
        states = {logger.name: logger.state() for logger in self.loggers}
        return states or None

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.resume = dict(state)

    def _log(self, values: Mapping[str, float], step: int) -> None:
        for logger in self.loggers:
            logger.log_scalars(values, step)

    def _close(self, failed: bool) -> None:
        for logger in self.loggers:
            logger.close(failed=failed)
        self.loggers = []
