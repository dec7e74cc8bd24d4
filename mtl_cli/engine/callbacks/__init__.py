"""The training loop's callbacks: records, checkpoints, signals, progress display, curves and trackers."""

from mtl_cli.engine.callbacks.base import Callback, EpochRecord, StepRecord
from mtl_cli.engine.callbacks.checkpoints import Checkpoints
from mtl_cli.engine.callbacks.curves import Curves
from mtl_cli.engine.callbacks.epoch_summary import EpochSummary
from mtl_cli.engine.callbacks.metrics_csv import MetricsCSV
from mtl_cli.engine.callbacks.progress_bar import ProgressBar
from mtl_cli.engine.callbacks.relation import RelationEpochEnd
from mtl_cli.engine.callbacks.signal_stop import SignalStop
from mtl_cli.engine.callbacks.trackers import TrackerLogging
from mtl_cli.engine.callbacks.weight_history import WeightHistory

__all__ = [
    "Callback",
    "Checkpoints",
    "Curves",
    "EpochRecord",
    "EpochSummary",
    "MetricsCSV",
    "ProgressBar",
    "RelationEpochEnd",
    "SignalStop",
    "StepRecord",
    "TrackerLogging",
    "WeightHistory",
]
