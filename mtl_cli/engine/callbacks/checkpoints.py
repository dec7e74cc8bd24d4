"""``checkpoints/last.pt`` after every epoch and ``checkpoints/best.pt`` when the monitored metric improves."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from mtl_cli.engine.callbacks.base import Callback, EpochRecord
from mtl_cli.engine.checkpoint import remove_partial_files, save_checkpoint

if TYPE_CHECKING:
    from mtl_cli.engine.trainer import Trainer

log = logging.getLogger("mtl_cli")


class Checkpoints(Callback):
    """Saves ``trainer.state_dict()`` into ``folder`` at the end of every epoch."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_fit_start(self, trainer: Trainer) -> None:
        """A resumed run removes the partial file of a save that was killed (SIGKILL) half-way."""
        for partial in remove_partial_files(self.folder):
            log.warning("removed %s, left by a save that did not finish", partial)

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        state = trainer.state_dict()
        save_checkpoint(self.folder / "last.pt", state)
        if record.improved:
            save_checkpoint(self.folder / "best.pt", state)
