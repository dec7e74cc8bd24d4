"""The ``logger`` config: which experiment trackers a run logs to, and their options.

A structured config for the Hydra schema. ``logger`` is also a config group (``configs/logger/``):
``logger=[csv,tensorboard]`` selects several of its options, each of which sets its tracker's
``enabled``; ``logger.mlflow.tracking_uri=...`` and friends set the per-tracker options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class TensorBoardOptions:
    """TensorBoard: event files go to ``<run dir>/<subdir>``."""

    enabled: bool = False
    subdir: str = "tensorboard"


@dataclass
class MlflowOptions:
    """MLflow: where runs are stored and which experiment they join.

    ``tracking_uri`` None means a local store beside ``outputs/``: ``sqlite:///<root>/mlflow.db``
    with artifacts under ``<root>/mlruns``, which a plain ``mlflow ui`` started in ``<root>`` shows.
    ``experiment`` None means one experiment per sweep (named after it), or ``mtl-cli`` for single runs.
    """

    enabled: bool = False
    tracking_uri: Optional[str] = None
    experiment: Optional[str] = None


@dataclass
class WandbOptions:
    """Weights & Biases: ``mode`` None means online when logged in (WANDB_API_KEY or netrc), else offline."""

    enabled: bool = False
    project: str = "mtl-cli"
    entity: Optional[str] = None
    mode: Optional[str] = None


@dataclass
class LoggerConfig:
    """Which trackers a run logs to (``csv`` is always on), and each tracker's options."""

    tensorboard: TensorBoardOptions = field(default_factory=TensorBoardOptions)
    mlflow: MlflowOptions = field(default_factory=MlflowOptions)
    wandb: WandbOptions = field(default_factory=WandbOptions)

    @property
    def names(self) -> list[str]:
        """``csv`` and the enabled trackers, e.g. ``["csv", "tensorboard"]``."""
        trackers = (("tensorboard", self.tensorboard), ("mlflow", self.mlflow), ("wandb", self.wandb))
        return ["csv", *(name for name, options in trackers if options.enabled)]
