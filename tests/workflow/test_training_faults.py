"""Issue 12.9-12.11 and 12.15: divergence stops the run clearly; weights.csv always; resume at max_steps."""

from __future__ import annotations

import csv
import json
import math
import sys

import pytest
from wf_helpers import compose_cfg, one_thread  # noqa: F401 (autouse)

from mtl_cli.cli import run_cli
from mtl_cli.engine.run import train_run
from mtl_cli.engine.signals import TrainingInterrupted
from mtl_cli.engine.trainer import Trainer
from mtl_cli.errors import UserError

QUIET = ["trainer.vis_images=0", "trainer.progress=false"]  # 64 images / batch 16 = 4 steps per epoch


def _losses_from(call: int, change):
    """Wrap ``Trainer._task_losses`` so that from its ``call``-th call on every loss is ``change(loss)``."""
    original = Trainer._task_losses
    calls = [0]

    def wrapped(self, preds, targets, masks, size=None):
        calls[0] += 1
        losses = original(self, preds, targets, masks, size)
        return [change(loss) for loss in losses] if calls[0] >= call else losses

    return wrapped


def test_nan_is_reported_at_the_step_metrics_csv_would_give_it(tmp_path, monkeypatch):
    """12.11: the 6th batch is step 6 (epoch 2), one after metrics.csv's last row of epoch 1 (step 4)."""
    monkeypatch.setattr(Trainer, "_task_losses", _losses_from(6, lambda loss: loss * math.inf))
    run = tmp_path / "run"
    with pytest.raises(UserError) as caught:
        train_run(compose_cfg(*QUIET, "trainer.epochs=3"), run)
    message = str(caught.value)
    assert "became NaN/inf at step 6 (epoch 2)" in message, message
    assert f"the last good checkpoint {run / 'checkpoints' / 'last.pt'} is kept" in message  # 12.10: it exists
    with (run / "metrics.csv").open() as handle:
        assert [row["step"] for row in csv.DictReader(handle)] == ["4"]


def test_finite_divergence_stops_with_a_clear_message(tmp_path, monkeypatch):
    """12.9: a loss 1e6 times its first value (finite) for 3 log points stops the run; the checkpoint stays."""
    monkeypatch.setattr(Trainer, "_task_losses", _losses_from(6, lambda loss: loss + loss.detach() * 1e6))
    run = tmp_path / "run"
    with pytest.raises(UserError) as caught:
        train_run(compose_cfg(*QUIET, "trainer.epochs=3", "trainer.log_every_n_steps=1"), run)
    message = str(caught.value)
    assert message.startswith("training diverged: the loss of task 'cls' is ")
    assert "at 3 log points in a row (step 8, epoch 2)" in message, message
    assert f"the last good checkpoint {run / 'checkpoints' / 'last.pt'} is kept" in message
    summary = (run / "summary.json").read_text()
    assert '"status": "failed"' in summary and "training diverged" in summary


def test_divergence_before_any_checkpoint_names_none(tmp_path, monkeypatch):
    """12.10: messages name only files that exist (here no checkpoint was saved yet)."""
    monkeypatch.setattr(Trainer, "_task_losses", _losses_from(2, lambda loss: loss + loss.detach() * 1e6))
    with pytest.raises(UserError, match="at the end of the epoch .*no checkpoint had been saved yet"):
        train_run(compose_cfg(*QUIET, "trainer.epochs=1"), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_weights_recorded_with_fewer_steps_than_the_log_interval(tmp_path):
    """12.15: 4 steps per epoch, log every 50: one row per epoch and the picture."""
    run = tmp_path / "run"
    train_run(compose_cfg(*QUIET, "weighting=ew", "trainer.epochs=2", "trainer.log_every_n_steps=50"), run)
    with (run / "weights.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["step"], r["epoch"]) for r in rows] == [("4", "1"), ("8", "2")]
    assert float(rows[0]["weight/cls"]) == 1.0 and (run / "weights.png").is_file()


def test_resume_of_a_max_steps_checkpoint_stops_at_max_steps(tmp_path):
    """12.15: resuming a max_steps=3 checkpoint with trainer.epochs=2 trains no further step."""
    settings = [*QUIET, "trainer.epochs=2", "trainer.max_steps=3"]
    first = tmp_path / "first"
    assert train_run(compose_cfg(*settings), first)["steps"] == 3
    resumed = train_run(compose_cfg(*settings, f"trainer.resume={first}"), tmp_path / "again")
    assert resumed["steps"] == 3 and resumed["status"] == "completed"


def test_second_sigint_is_an_interruption_not_a_failure(tmp_path, monkeypatch):
    """12.5: a second Ctrl-C raises KeyboardInterrupt mid-step; the run is 'interrupted', resumable from last.pt."""
    original = Trainer._optimizer_step
    calls = [0]

    def step(self, batches):
        calls[0] += 1
        if calls[0] == 6:
            raise KeyboardInterrupt
        original(self, batches)

    monkeypatch.setattr(Trainer, "_optimizer_step", step)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as caught:
        train_run(compose_cfg(*QUIET, "trainer.epochs=3"), run)
    assert caught.value.checkpoint == run / "checkpoints" / "last.pt" and caught.value.exit_code == 130
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["error"].startswith("stopped by SIGINT at once")
    assert summary["resume_command"].endswith(f"trainer.resume={run}")


def test_sigint_while_starting_up_is_one_line(monkeypatch, capsys):
    """12.5: Ctrl-C before training (composing, building) ends with one line and 130, no traceback."""

    def entry():
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "argv", ["mtl-train"])
    with pytest.raises(SystemExit) as caught:
        run_cli("mtl-train", entry)
    assert caught.value.code == 130 and capsys.readouterr().err == "mtl-train: interrupted (SIGINT)\n"
