"""The interface every experiment tracker implements, and what a tracker is told about its run."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Scalar = int | float | str | bool | None


@dataclass
class RunInfo:
    """What a tracker needs to know to open (or reopen) its run.

    run_dir: the run directory (trackers that write files put them below it).
    run_name: a readable name for the run (the run directory's name, say).
    group: the sweep id for multirun jobs (one MLflow experiment, one W&B group); None for single runs.
    tags: the job's overrides (``{"weighting": "uw"}``), recorded as tags / params.
    tracking_root: where local stores shared by many runs go (MLflow's); default ``run_dir``.
    resume: a previous ``state()`` of this tracker, to continue the same tracker run; None when new.
    resume_step: the global step of the checkpoint training resumes from; the old run's points
        after it are dropped where the tracker supports it (TensorBoard).
    """

    run_dir: Path
    run_name: str
    group: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    tracking_root: Path | None = None
    resume: dict[str, Any] | None = None
    resume_step: int | None = None

    @property
    def store_root(self) -> Path:
        """Where shared local stores go."""
        return Path(self.tracking_root) if self.tracking_root is not None else Path(self.run_dir)


class TrackerLogger(ABC):
    """An experiment tracker a training run reports to.

    The loop calls, on the main process only: ``start`` once; ``log_scalars`` every
    ``trainer.log_every_n_steps`` steps (train losses, task weights) and once an epoch (val
    metrics, learning rate, images/s, Δm); ``log_hparams`` at the end with the flattened config and
    the final metrics; ``log_artifact`` for each picture and summary.json; ``state`` when saving a
    checkpoint (its result comes back as ``RunInfo.resume``); ``close`` last.
    A configuration problem found by ``start`` raises ``UserError``; any other exception is the
    tracker failing, which ``GuardedLogger`` turns into a warning.
    """

    name: str = ""

    @abstractmethod
    def start(self, run: RunInfo) -> None:
        """Open the tracker run (a new one, or the one ``run.resume`` names)."""

    @abstractmethod
    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Record scalar values at a global step."""

    @abstractmethod
    def log_hparams(self, params: Mapping[str, Scalar], final_metrics: Mapping[str, float]) -> None:
        """Record the flattened config together with the run's final metrics."""

    @abstractmethod
    def log_artifact(self, path: Path, step: int | None = None) -> None:
        """Attach a file (a picture, summary.json) to the run."""

    def state(self) -> dict[str, Any]:
        """What ``start`` needs to continue this tracker run on resume (JSON-ready)."""
        return {}

    @abstractmethod
    def close(self, failed: bool = False) -> None:
        """Finish the tracker run, marking it failed when the training run failed."""
