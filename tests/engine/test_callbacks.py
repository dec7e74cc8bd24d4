"""The loop's callback points, the records it passes, callback state in checkpoints, and the registries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scale_helpers import build

from mtl_cli.config import PRECISIONS as PRECISION_CHOICES
from mtl_cli.config import OptimizerName, SchedulerName
from mtl_cli.engine.callbacks import Callback, EpochRecord, StepRecord
from mtl_cli.engine.optim import OPTIMIZERS, SCHEDULERS
from mtl_cli.engine.precision import PRECISIONS


class Recorder(Callback):
    """Remembers every call it gets, and a count as its resumable state."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.steps: list[StepRecord] = []
        self.epochs: list[EpochRecord] = []
        self.count = 0

    def on_fit_start(self, trainer) -> None:
        self.calls.append(("fit_start",))

    def on_epoch_start(self, trainer, epoch, batches_done) -> None:
        self.calls.append(("epoch_start", epoch, batches_done))

    def on_step_end(self, trainer, step) -> None:
        self.calls.append(("step_end", step.step))
        self.steps.append(step)
        self.count += 1

    def on_train_epoch_end(self, trainer, epoch) -> None:
        self.calls.append(("train_epoch_end", epoch))

    def on_epoch_end(self, trainer, record) -> None:
        self.calls.append(("epoch_end", record.epoch))
        self.epochs.append(record)

    def on_fit_end(self, trainer) -> None:
        self.calls.append(("fit_end",))

    def state_dict(self) -> Mapping[str, Any]:
        return {"count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.count = state["count"]


def test_step_end_runs_only_at_log_points_and_records_carry_the_values():
    # 32 images, batch 8: 4 steps per epoch; log points at steps 3 and 6 (max_steps) only.
    trainer = build("trainer.epochs=3", "trainer.max_steps=6", "trainer.log_every_n_steps=3")
    recorder = Recorder()
    trainer.callbacks.append(recorder)
    trainer.fit()
    assert recorder.calls == [
        ("fit_start",),
        ("epoch_start", 1, 0),
        ("step_end", 3),
        ("train_epoch_end", 1),
        ("epoch_end", 1),
        ("epoch_start", 2, 0),
        ("step_end", 6),
        ("train_epoch_end", 2),
        ("epoch_end", 2),
        ("fit_end",),
    ]
    step = recorder.steps[0]
    assert (step.epoch, step.batches) == (1, 3)
    assert list(step.losses) == list(step.weights) == ["cls", "seg"]
    assert step.lr == trainer.optimizer.param_groups[0]["lr"] > 0
    assert step.images_per_s is not None and step.images_per_s > 0
    record = recorder.epochs[-1]
    assert (record.epoch, record.step) == (2, 6)
    assert record.metrics == trainer.state.last_metrics
    assert list(record.losses) == list(record.weights) == ["cls", "seg"]
    assert record.images_per_s is not None and record.images_per_s > 0


def test_callback_state_is_saved_and_restored_with_the_trainer():
    trainer = build("trainer.max_steps=2", "trainer.log_every_n_steps=1")
    recorder = Recorder()
    trainer.callbacks.append(recorder)
    trainer.train_epoch(1)
    state = trainer.state_dict()
    assert state["callbacks"]["Recorder"] == {"count": 2}
    resumed = build("trainer.max_steps=2", "trainer.log_every_n_steps=1")
    restored = Recorder()
    resumed.callbacks.append(restored)
    resumed.load_state_dict(state)
    assert restored.count == 2 and resumed.state.step == 2
    assert "Recorder" not in build().state_dict().get("callbacks", {})  # only callbacks that were added save state


def test_every_configurable_choice_has_a_constructor():
    assert set(OPTIMIZERS) == {o.value for o in OptimizerName}
    assert set(SCHEDULERS) == {s.value for s in SchedulerName}
    assert set(PRECISIONS) == set(PRECISION_CHOICES)
