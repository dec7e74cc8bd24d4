"""The log block after each epoch: train losses, then the validation metrics."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mtl_cli.engine.callbacks.base import Callback, EpochRecord
from mtl_cli.engine.records import format_epoch_summary

if TYPE_CHECKING:
    from mtl_cli.engine.trainer import Trainer

log = logging.getLogger("mtl_cli")


class EpochSummary(Callback):
    """Logs ``format_epoch_summary`` of every epoch."""

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        epochs = trainer.settings.epochs
        size = trainer.resized_to
        log.info(format_epoch_summary(record.epoch, epochs, record.losses, record.metrics, record.seconds, size))
