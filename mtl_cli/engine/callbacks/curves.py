"""``curves.png``: the learning curves of the run so far, redrawn after every epoch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mtl_cli.engine.callbacks.base import Callback, EpochRecord
from mtl_cli.loggers.curves import draw_curves

if TYPE_CHECKING:
    from mtl_cli.engine.trainer import Trainer


class Curves(Callback):
    """Draws ``trainer.state.history`` (the metrics.csv rows) to ``path``; list it after ``MetricsCSV``.

    Train loss per task, each validation metric and the task weights over epochs; a resumed
    run's picture includes the epochs of the run it continues.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        draw_curves(trainer.state.history, self.path)
