"""``curves.png``: the learning curves of the run so far, redrawn as epochs end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from mtl_cli.engine.callbacks.base import Callback, EpochRecord

if TYPE_CHECKING:
    from mtl_cli.engine.trainer import Trainer


class Curves(Callback):
    """Draws ``trainer.state.history`` (the metrics.csv rows) to ``path``; list it after ``MetricsCSV``.

    Train loss per task, each validation metric and the task weights over epochs; a resumed
    run's picture includes the epochs of the run it continues. Drawing takes about a second
    on a CPU, so after an epoch the picture is redrawn only when ``min_interval_s`` have
    passed since the last drawing (or the start of training): every epoch of a run whose
    epochs take longer, a few times over a run of short ones. It is always drawn when
    training ends, however it ends.
    """

    def __init__(self, path: Path, min_interval_s: float = 60.0) -> None:
        self.path = path
        self.min_interval_s = min_interval_s
        self._last_drawn = time.monotonic()
        self._drawn_rows = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        self._last_drawn = time.monotonic()

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        if time.monotonic() - self._last_drawn >= self.min_interval_s:
            self._draw(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._draw(trainer)

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        self._draw(trainer)

    def _draw(self, trainer: Trainer) -> None:
        history = trainer.state.history
        if len(history) == self._drawn_rows:
            return
        from mtl_cli.loggers.curves import draw_curves  # matplotlib takes ~1 s to import

        draw_curves(history, self.path)
        self._drawn_rows = len(history)
        self._last_drawn = time.monotonic()
