"""``checkpoints/last.pt`` after every epoch and ``checkpoints/best.pt`` when the monitored metric improves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mtl_cli.engine.callbacks.base import Callback, EpochRecord
from mtl_cli.engine.checkpoint import save_checkpoint

if TYPE_CHECKING:
    from mtl_cli.engine.trainer import Trainer


class Checkpoints(Callback):
    """Saves ``trainer.state_dict()`` into ``folder`` at the end of every epoch."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        state = trainer.state_dict()
        save_checkpoint(self.folder / "last.pt", state)
        if record.improved:
            save_checkpoint(self.folder / "best.pt", state)
