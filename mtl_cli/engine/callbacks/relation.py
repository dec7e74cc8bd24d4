"""Closing the task-relation measurements of an epoch (``TaskRelation.epoch_end``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_cli.engine.callbacks.base import Callback

if TYPE_CHECKING:
    from mtl_cli.engine.trainer import Trainer


class RelationEpochEnd(Callback):
    """After each epoch's training: average the measurements, write the records, feed back R.

    The per-step measurement and coupling run inside the training step (around the
    backward); this is what remains of the trainer's ``relation``.
    """

    def on_train_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        if trainer.relation is not None:
            trainer.relation.epoch_end(epoch)
