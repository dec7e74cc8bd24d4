"""End to end: a tiny run per method and mode, sweeps, bad input and a NaN loss through the CLI.

The option checks themselves are tested in-process (test_options.py); here only that
they reach the user as one line.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import TINY, read_summary, run_cli, run_dirs

from mtl_cli.engine.run import train_run
from mtl_cli.weighting import METHODS, GradientWeighting

from .conftest import METHOD_MODES, compose_config

pytestmark = pytest.mark.slow

SMALL = [*TINY, "data.num_train=32", "data.num_val=8", "trainer.vis_images=0"]  # two steps per epoch


@pytest.fixture(autouse=True)
def _one_thread_subprocesses(monkeypatch):
    """Runs this small gain nothing from a second thread, and lose much when the CPU is busy."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    "name, options", METHOD_MODES, ids=[f"{n}-{o.get('grad_on', 'loss')}" for n, o in METHOD_MODES]
)
def test_tiny_run_per_method_records_the_weights(tmp_path, name, options):
    overrides = [f"weighting.{k}={v}" for k, v in options.items()]
    cfg = compose_config(
        "task=cls+seg",
        f"weighting={name}",
        *overrides,
        "trainer.epochs=1",
        "trainer.max_steps=2",
        "trainer.log_every_n_steps=1",
        "trainer.vis_images=0",
    )
    summary = train_run(cfg, tmp_path)
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert summary["weighting"]["name"] == name
    rows = read_csv(tmp_path / "weights.csv")
    assert [r["step"] for r in rows] == ["1", "2"]
    assert {"weight/cls", "weight/seg"} <= set(rows[0])
    if issubclass(METHODS[name], GradientWeighting):
        assert -1.0 <= float(rows[0]["cos/cls~seg"]) <= 1.0
    epoch = read_csv(tmp_path / "metrics.csv")[0]
    mean = (float(rows[0]["weight/seg"]) + float(rows[1]["weight/seg"])) / 2
    assert float(epoch["weight/seg"]) == pytest.approx(mean, rel=1e-4)
    assert (tmp_path / "weights.png").stat().st_size > 0
    if name == "nash_mtl":
        assert summary["weighting"]["nash_mtl"] == {"solves": 2, "solve_failures": 0}


@pytest.mark.e2e
def test_sweep_over_fixed_weights_one_run_each(tmp_path):
    run_cli(
        "mtl_cli.train",
        [
            "-m",
            *SMALL,
            "trainer.epochs=1",
            "trainer.log_every_n_steps=1",
            "weighting=fixed",
            "loss.weights.seg=0.5,2.0",
        ],
        cwd=tmp_path,
    )
    runs = run_dirs(tmp_path)
    assert len(runs) == 2
    seen = set()
    for run in runs:
        weight = float(read_csv(run / "metrics.csv")[0]["weight/seg"])
        seen.add(weight)
        assert read_summary(run)["weighting"] == {"name": "fixed"}
        assert f"weights cls 1 seg {weight:g}" in (run / "train.log").read_text()
        assert (run / "weights.png").is_file()
    assert seen == {0.5, 2.0}


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args, message",
    [
        (["weighting=nope"], "available weighting: aligned_mtl, cagrad, db_mtl"),
        (["weighting.name=nope"], "unknown weighting method 'nope'; known methods: ew, fixed, uw"),
        (["weighting=dwa", "loss.weights.seg=2.0"], "loss.weights.seg=2.0 has no effect with weighting=dwa"),
    ],
)
def test_bad_weighting_input_is_one_line(tmp_path, args, message):
    proc = run_cli("mtl_cli.train", [*TINY, *args], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mtl-train: error:") and message in lines[0], proc.stderr
    assert not run_dirs(tmp_path) or all(read_summary(d)["status"] != "completed" for d in run_dirs(tmp_path))


@pytest.mark.e2e
def test_nan_loss_stops_naming_task_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # Epoch 1 trains normally; the step schedule then multiplies the learning rate by 1e30.
    proc = run_cli(
        "mtl_cli.train",
        [*SMALL, "weighting=nash_mtl", "optim=sgd", "optim.scheduler=step", "optim.step_size=1", "optim.gamma=1e30"],
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "became NaN/inf at step" in lines[0] and "(epoch 2)" in lines[0], proc.stderr
    assert "the loss of task 'cls'" in lines[0] or "the loss of task 'seg'" in lines[0]
    (run,) = run_dirs(tmp_path)
    assert read_summary(run)["status"] == "failed"
    assert [r["epoch"] for r in read_csv(run / "metrics.csv")] == ["1"]
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["train_state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point())
