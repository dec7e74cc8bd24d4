"""The tqdm bar of the epoch's batches with the running losses (on a terminal, rank 0 only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tqdm import tqdm

from mtl_cli.engine.callbacks.base import Callback, StepRecord

if TYPE_CHECKING:
    from mtl_cli.engine.trainer import Trainer


class ProgressBar(Callback):
    """One bar per epoch, advanced at log points (shown only when stderr is a terminal)."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def on_epoch_start(self, trainer: Trainer, epoch: int, batches_done: int) -> None:
        self.bar = tqdm(
            total=len(trainer.train_loader),  # type: ignore[arg-type]
            initial=batches_done,
            desc=f"epoch {epoch}/{trainer.settings.epochs}",
            disable=None,  # only on a terminal
            leave=False,
            dynamic_ncols=True,
        )

    def on_step_end(self, trainer: Trainer, step: StepRecord) -> None:
        if self.bar is None:
            return
        self.bar.update(step.batches - self.bar.n)
        means = step.losses
        self.bar.set_postfix_str(
            f"loss {sum(means.values()):.3f} " + " ".join(f"{n} {v:.3f}" for n, v in means.items())
        )

    def on_train_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
