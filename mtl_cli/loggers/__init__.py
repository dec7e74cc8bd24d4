"""Experiment trackers (TensorBoard, MLflow, W&B) and the curves.png drawing, behind one interface.

Nothing here imports the training engine: the loop drives these through a callback.
"""

from mtl_cli.loggers.base import RunInfo, Scalar, TrackerLogger
from mtl_cli.loggers.config import LoggerConfig, MlflowOptions, TensorBoardOptions, WandbOptions
from mtl_cli.loggers.guard import GuardedLogger
from mtl_cli.loggers.registry import KNOWN, build_loggers, check_names, logger_config

__all__ = [
    "KNOWN",
    "GuardedLogger",
    "LoggerConfig",
    "MlflowOptions",
    "RunInfo",
    "Scalar",
    "TensorBoardOptions",
    "TrackerLogger",
    "WandbOptions",
    "build_loggers",
    "check_names",
    "logger_config",
]
