"""The tracker callback forwards the loop's records to each tracker; curves.png follows metrics.csv."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from mtl_cli.engine.baselines import Baselines
from mtl_cli.engine.callbacks import Curves, EpochRecord, StepRecord, TrackerLogging
from mtl_cli.engine.state import TrainState
from mtl_cli.loggers import GuardedLogger, RunInfo, TrackerLogger


class Recorder(TrackerLogger):
    """A tracker that keeps every call; ``fail_on`` names a method that raises."""

    name = "recorder"

    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[tuple] = []
        self.fail_on = fail_on

    def _call(self, *call) -> None:
        if call[0] == self.fail_on:
            raise OSError(28, "No space left on device")
        self.calls.append(call)

    def start(self, run):
        self._call("start", run.resume, run.resume_step)

    def log_scalars(self, values, step):
        self._call("scalars", dict(values), step)

    def log_hparams(self, params, final_metrics):
        self._call("hparams", dict(params), dict(final_metrics))

    def log_artifact(self, path, step=None):
        self._call("artifact", Path(path).name)

    def state(self):
        return {"run_id": "abc"}

    def close(self, failed=False):
        self._call("close", failed)


STEP = StepRecord(
    step=10,
    epoch=1,
    batches=10,
    losses={"cls": 0.5},
    weights={"cls": 1.0},
    report={"cos/cls-seg": 0.2},
    lr=0.01,
    seconds=1.0,
    images_per_s=100.0,
)
EPOCH = EpochRecord(
    epoch=1,
    step=12,
    losses={"cls": 0.4},
    weights={"cls": 1.0},
    lr=0.01,
    metrics={"cls": {"accuracy": 0.6}},
    seconds=2.0,
    images_per_s=90.0,
    improved=True,
)


def callback_for(tracker: Recorder, run_dir: Path, baselines: Baselines | None = None) -> TrackerLogging:
    run = RunInfo(run_dir=run_dir, run_name="run")
    return TrackerLogging([GuardedLogger(tracker)], run, {"optim.lr": 0.01}, baselines)


def test_forwards_steps_epochs_params_and_pictures(tmp_path):
    (tmp_path / "curves.png").write_bytes(b"png")
    tracker = Recorder()
    callback = callback_for(tracker, tmp_path, Baselines({"cls": {"accuracy": 0.5}}, {"cls": {"accuracy": True}}))
    trainer = SimpleNamespace(state=TrainState(step=12))
    callback.on_fit_start(trainer)
    callback.on_step_end(trainer, STEP)
    callback.on_epoch_end(trainer, EPOCH)
    assert callback.state_dict() == {"recorder": {"run_id": "abc"}}
    callback.on_run_end(trainer, {"status": "completed", "metrics": {"cls": {"accuracy": 0.6}}})
    assert tracker.calls == [
        ("start", None, None),
        ("scalars", {"train/cls_loss": 0.5, "weight/cls": 1.0, "cos/cls-seg": 0.2}, 10),
        (
            "scalars",
            {"epoch": 1, "lr": 0.01, "val/cls.accuracy": 0.6, "images_per_s": 90.0, "val/delta_m": pytest.approx(20.0)},
            12,
        ),
        ("hparams", {"optim.lr": 0.01}, {"val/cls.accuracy": 0.6, "val/delta_m": pytest.approx(20.0)}),
        ("artifact", "curves.png"),  # the pictures that exist, and summary.json when written
        ("close", False),
    ]


def test_resume_reopens_the_saved_tracker_run(tmp_path):
    tracker = Recorder()
    callback = callback_for(tracker, tmp_path)
    callback.load_state_dict({"recorder": {"run_id": "abc"}})
    callback.on_fit_start(SimpleNamespace(state=TrainState(step=40)))
    callback.on_exception(None, KeyboardInterrupt())
    assert tracker.calls == [("start", {"run_id": "abc"}, 40), ("close", True)]


def test_a_tracker_failing_mid_run_is_one_warning(tmp_path, caplog):
    tracker = Recorder(fail_on="scalars")
    callback = callback_for(tracker, tmp_path)
    trainer = SimpleNamespace(state=TrainState())
    with caplog.at_level(logging.WARNING, logger="mtl_cli"):
        callback.on_fit_start(trainer)
        callback.on_step_end(trainer, STEP)
        callback.on_epoch_end(trainer, EPOCH)
        callback.on_run_end(trainer, {"status": "completed", "metrics": {}})
    assert tracker.calls == [("start", None, None), ("close", True)]  # off after the failure, closed quietly
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("recorder logger failed in log_scalars")


def test_curves_are_redrawn_from_the_history(tmp_path):
    path = tmp_path / "curves.png"
    trainer = SimpleNamespace(state=TrainState(history=[{"epoch": 1, "train/cls_loss": 0.5, "val/cls.accuracy": 0.6}]))
    Curves(path, min_interval_s=0).on_epoch_end(trainer, EPOCH)
    first = path.stat().st_mtime_ns
    trainer.state.history.append({"epoch": 2, "train/cls_loss": 0.4, "val/cls.accuracy": 0.7})
    Curves(path, min_interval_s=0).on_epoch_end(trainer, EPOCH)
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_mtime_ns >= first


def test_curves_wait_min_interval_between_drawings_and_are_drawn_when_training_ends(tmp_path):
    path = tmp_path / "curves.png"
    trainer = SimpleNamespace(state=TrainState(history=[{"epoch": 1, "train/cls_loss": 0.5, "val/cls.accuracy": 0.6}]))
    curves = Curves(path, min_interval_s=3600)
    curves.on_fit_start(trainer)
    curves.on_epoch_end(trainer, EPOCH)
    assert not path.exists()  # an hour has not passed
    curves.on_fit_end(trainer)
    assert path.read_bytes()[:4] == b"\x89PNG"
    path.unlink()
    curves.on_exception(trainer, KeyboardInterrupt())
    assert not path.exists()  # nothing new to draw
    trainer.state.history.append({"epoch": 2, "train/cls_loss": 0.4, "val/cls.accuracy": 0.7})
    curves.on_exception(trainer, KeyboardInterrupt())
    assert path.is_file()  # an interrupted run keeps the picture of its last epoch
