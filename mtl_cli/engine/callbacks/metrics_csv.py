"""``metrics.csv``: one row per epoch (train losses, mean weights, validation metrics, and
the relation regulariser's Omega at the epoch's end when ``relation.lambda > 0``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtl_cli.engine.callbacks.base import Callback, EpochRecord
from mtl_cli.engine.records import flatten_metrics
from mtl_cli.utils.files import MetricsLog

if TYPE_CHECKING:
    from mtl_cli.engine.trainer import Trainer


class MetricsCSV(Callback):
    """Appends every epoch's row to ``path`` and to ``TrainState.history`` (saved in checkpoints).

    A resumed run starts its file with the rows of the run it continues (the history
    restored from the checkpoint).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log: MetricsLog | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.log = MetricsLog(self.path)
        for row in trainer.state.history:
            self.log.append(row)

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        row: dict[str, Any] = {"epoch": record.epoch, "step": record.step, "lr": record.lr, "time_s": record.seconds}
        row["train/loss"] = sum(record.losses.values())
        row.update({f"train/{t}_loss": v for t, v in record.losses.items()})
        row.update({f"weight/{t}": v for t, v in record.weights.items()})
        row.update(flatten_metrics(record.metrics))
        if trainer.relation is not None and trainer.relation.regularizer is not None:
            row["relation/omega"] = trainer.relation.regularizer.value()
        trainer.state.history.append(row)
        assert self.log is not None  # opened in on_fit_start
        self.log.append(row)
