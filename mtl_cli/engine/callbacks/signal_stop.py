"""SIGINT/SIGTERM: finish the current step, save ``last.pt`` and stop with ``TrainingInterrupted``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from mtl_cli.engine.callbacks.base import Callback
from mtl_cli.engine.checkpoint import save_checkpoint
from mtl_cli.engine.signals import StopOnSignal, TrainingInterrupted
from mtl_cli.engine.state import EpochProgress

if TYPE_CHECKING:
    from mtl_cli.engine.trainer import Trainer


class SignalStop(Callback):
    """While ``fit`` runs, a stop signal asks the trainer to stop after the current step.

    The loop acts on the request (under DDP all ranks after the same step); then a stop
    in the middle of an epoch saves ``last.pt`` with the epoch's progress (the
    end-of-epoch ``last.pt`` would lose its steps), and ``TrainingInterrupted`` names the
    checkpoint to resume from. ``run_dir`` is ``None`` on ranks that write no records.
    """

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir
        self.signals: StopOnSignal | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.signals = StopOnSignal(on_signal=trainer.request_stop)
        self.signals.__enter__()

    def on_stop(self, trainer: Trainer, signum: int, progress: EpochProgress | None) -> None:
        checkpoint = None
        if self.run_dir is not None:
            checkpoint = self.run_dir / "checkpoints" / "last.pt"
            if progress is not None:
                state = trainer.state_dict()
                state["epoch_progress"] = asdict(progress)
                save_checkpoint(checkpoint, state)
            elif not checkpoint.is_file():
                checkpoint = None
        where = f"after epoch {trainer.state.epoch}" if progress is None else f"in epoch {progress.epoch}"
        raise TrainingInterrupted(signum, checkpoint, f"{where} (step {trainer.state.step})")

    def on_fit_end(self, trainer: Trainer) -> None:
        self._release()

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        self._release()

    def _release(self) -> None:
        if self.signals is not None:
            self.signals.__exit__(None, None, None)
            self.signals = None
