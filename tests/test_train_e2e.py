"""End-to-end: mtl-train runs, writes its records, is deterministic and reproducible."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from conftest import REPO, TINY, read_summary, run_cli, run_dirs
from omegaconf import OmegaConf

ALL = ["cls", "seg", "depth", "normals", "edges", "multilabel"]

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.mark.parametrize("task", ALL)
def test_single_task_run(train, task):
    run = train(f"task={task}", "trainer.epochs=1")
    summary = read_summary(run)
    assert summary["status"] == "completed"
    assert list(summary["metrics"]) == [task]


def test_all_tasks_run_writes_every_record(train):
    run = train("task=" + "+".join(reversed(ALL)))
    summary = read_summary(run)
    assert summary["tasks"] == ALL  # canonical order whatever order was typed
    expected_metrics = {
        "cls": {"accuracy"},
        "seg": {"miou", "pixel_accuracy"},
        "depth": {"abs_err", "rel_err"},
        "normals": {"mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30"},
        "edges": {"ods_f", "f1"},
        "multilabel": {"mean_accuracy", "map"},
    }
    assert {t: set(m) for t, m in summary["metrics"].items()} == expected_metrics
    assert set(summary["best_metrics"]) == set(ALL)
    for key in ("wall_time_s", "params", "peak_memory_mb", "overrides", "train_images_per_s"):
        assert key in summary
    assert summary["params"]["total"] == summary["params"]["shared"] + sum(summary["params"][t] for t in ALL)
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train/cls_loss", "val/seg.miou", "lr", "time_s", "weight/depth"} <= set(rows[0])
    records = (".hydra/config.yaml", "train.log", "checkpoints/last.pt", "checkpoints/best.pt", "val_predictions.png")
    for name in (*records, "curves.png"):  # curves.png in every run, whatever logger= says
        assert (run / name).is_file(), name
    assert "epoch 2/2" in (run / "train.log").read_text()


def _history(run) -> list[dict]:
    """metrics.csv without the wall-clock column."""
    with (run / "metrics.csv").open() as handle:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(handle)]


def test_same_seed_same_metrics_and_reproduce_from_saved_config(train, tmp_path):
    first_dir = train("task=cls+seg")
    first = read_summary(first_dir)
    second_dir = train("task=cls+seg")
    second = read_summary(second_dir)
    assert first["metrics"] == second["metrics"]
    assert _history(first_dir) == _history(second_dir)
    other_seed = train("task=cls+seg", "trainer.seed=1")
    assert _history(other_seed) != _history(first_dir)
    before = set(run_dirs(tmp_path))
    run_cli(
        "mtl_cli.train",
        ["--config-dir", str(second_dir / ".hydra"), "--config-name", "config"],
        cwd=tmp_path,
    )
    (reproduced,) = [d for d in run_dirs(tmp_path) if d not in before]
    assert read_summary(reproduced)["metrics"] == first["metrics"]
    assert _history(reproduced) == _history(first_dir)


def test_max_steps_caps_the_run(train):
    summary = read_summary(train("trainer.max_steps=3", "trainer.epochs=5"))
    assert summary["steps"] == 3 and summary["epochs"] == 1


def test_learns_far_above_chance(train):
    run = train(
        "data.num_train=512",
        "data.num_val=128",
        "trainer.epochs=4",
        "backbone.width=16",
        "trainer.batch_size=32",
        "optim.scheduler=none",
        "data.image_size=48",
    )
    metrics = read_summary(run)["metrics"]
    assert metrics["seg"]["pixel_accuracy"] > 0.75


@pytest.mark.parametrize(
    "args, message",
    [
        (["task=cls+segg"], "unknown task 'segg'"),
        (["trainer.epochs=abc"], "trainer.epochs=abc"),
        (["loss.weights.seg=-1"], "loss.weights.seg=-1.0"),
        (["loss.weights.depth=2"], "loss.weights.depth"),
        (["backbone=vgg"], "vgg"),
        (["backbone.name=vgg"], "unknown backbone 'vgg'"),
        (["trainer.device=gpu"], "gpu"),
        (["trainer.monitor=seg.nope"], "no metric 'nope'"),
        (["logger=[csv,tensorbord]"], "available logger: csv, mlflow, tensorboard, wandb"),
    ],
)
def test_bad_input_one_line_and_nonzero_exit(tmp_path, args, message):
    proc = run_cli("mtl_cli.train", [*TINY, *args], cwd=tmp_path, check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mtl-train: error:") and message in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


def test_cfg_job_and_help(tmp_path):
    proc = run_cli("mtl_cli.train", ["--cfg", "job", "task=seg+cls"], cwd=tmp_path)
    cfg = OmegaConf.create(proc.stdout)
    assert list(cfg.tasks) == ["cls", "seg"]
    help_text = run_cli("mtl_cli.train", ["--help"], cwd=tmp_path).stdout
    for group in ("task:", "backbone:", "data:", "optim:", "trainer:", "weighting:", "arch:"):
        assert group in help_text


def test_configs_ship_with_a_non_editable_install(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--target",
            str(target),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    assert (target / "mtl_cli" / "configs" / "task" / "seg.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.argv=['mtl-train','--cfg','job','task=depth+cls']; "
            "import mtl_cli.train as t; print(t.__file__, file=sys.stderr); t.main()",
        ],
        cwd=elsewhere,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(target) in proc.stderr
    assert list(OmegaConf.create(proc.stdout).tasks) == ["cls", "depth"]
