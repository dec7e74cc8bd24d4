"""``mtl-train logger=[...]`` end to end: each tracker's records read back, resume, a grouped sweep."""

from __future__ import annotations

import json
from pathlib import Path

import logger_helpers
import pytest
from conftest import TINY, run_cli
from logger_helpers import wandb_history
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mtl_cli.reporting.runs import find_run_dirs

pytestmark = pytest.mark.e2e

offline_wandb = logger_helpers.offline_wandb  # autouse: W&B offline in a temp dir, nothing to the network

ALL = "logger=[csv,tensorboard,mlflow,wandb]"
FAST = [*TINY, "trainer.log_every_n_steps=2", "trainer.progress=false"]  # 4 steps an epoch


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard's scalars below ``log_dir``, read with its own event reader."""
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def mlflow_client(root: Path) -> MlflowClient:
    """The default local store of runs started in ``root``: ``mlflow ui`` there shows the same."""
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def test_every_tracker_reads_back_and_resume_continues_the_same_runs(tmp_path: Path):
    run_cli("mtl_cli.train", [*FAST, "trainer.epochs=1", ALL], cwd=tmp_path)
    (first,) = find_run_dirs(tmp_path / "outputs")
    assert (first / "curves.png").is_file()

    tb = scalars(first / "tensorboard")
    assert [step for step, _ in tb["train/cls_loss"]] == [2, 4]
    assert {"weight/seg", "val/cls.accuracy", "val/seg.miou", "lr", "images_per_s"} <= set(tb)

    client = mlflow_client(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("mtl-cli").experiment_id])
    metrics = json.loads((first / "summary.json").read_text())["metrics"]
    assert run.data.metrics["final/val/cls.accuracy"] == pytest.approx(metrics["cls"]["accuracy"])
    assert run.data.params["optim.name"] == "adam" and run.data.tags["override.trainer.epochs"] == "1"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"curves.png", "val_predictions.png", "weights.png", "summary.json"} <= artifacts
    assert run.info.status == "FINISHED"

    (wandb_run,) = (first / "wandb").glob("offline-run-*")
    history = wandb_history(next(wandb_run.glob("run-*.wandb")))
    assert [row["_step"] for row in history if "train/seg_loss" in row] == [2, 4]
    assert any("val/seg.miou" in row for row in history)

    run_cli("mtl_cli.train", [*FAST, "trainer.epochs=2", ALL, f"trainer.resume={first}"], cwd=tmp_path)
    (second,) = [d for d in find_run_dirs(tmp_path / "outputs") if d != first]
    (resumed,) = client.search_runs([run.info.experiment_id])
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/cls_loss")]
    assert steps == [2, 4, 6, 8]
    (wandb_resumed,) = (second / "wandb").glob("offline-run-*")
    assert wandb_resumed.name.split("-")[-1] == wandb_run.name.split("-")[-1]  # the same W&B run id


def test_a_sweep_is_one_mlflow_experiment_and_tensorboard_subdirs(tmp_path: Path):
    run_cli(
        "mtl_cli.train",
        ["-m", *FAST, "trainer.epochs=1", "logger=[csv,tensorboard,mlflow]", "optim.lr=0.001,0.002"],
        cwd=tmp_path,
    )
    jobs = find_run_dirs(tmp_path / "outputs")
    assert len(jobs) == 2 and jobs[0].parent == jobs[1].parent
    sweep_dir = jobs[0].parent
    assert sorted(p.parent.name for p in sweep_dir.glob("*/tensorboard")) == ["0", "1"]
    assert all("train/cls_loss" in scalars(job / "tensorboard") for job in jobs)

    client = mlflow_client(tmp_path)
    experiment = client.get_experiment_by_name(str(sweep_dir.relative_to(tmp_path)))
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["override.optim.lr"] for r in runs) == ["0.001", "0.002"]
    assert {r.data.tags["sweep"] for r in runs} == {experiment.name}
