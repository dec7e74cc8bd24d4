"""MLflow: params, metrics and artifacts read back with MlflowClient from the local store."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import logger_helpers
import pytest
from logger_helpers import write_png
from mlflow.tracking import MlflowClient

from mtl_cli.errors import UserError
from mtl_cli.loggers import MlflowOptions, RunInfo, build_loggers, logger_config
from mtl_cli.loggers.mlflow_logger import default_tracking_uri

offline_wandb = logger_helpers.offline_wandb  # autouse: W&B offline in a temp dir
run_info = logger_helpers.run_info


@pytest.fixture(scope="module")
def store_root(tmp_path_factory) -> Path:
    """One default (sqlite) store for the module: creating its tables takes seconds."""
    return tmp_path_factory.mktemp("beside-outputs")


def mlflow_logger(**options):
    (logger,) = build_loggers(logger_config(["mlflow"], mlflow=MlflowOptions(**options)), is_main=True)
    return logger


def test_default_store_holds_metrics_params_and_artifacts(run_info, store_root):
    run = replace(run_info, tracking_root=store_root)
    logger = mlflow_logger()
    logger.start(run)
    for step in (10, 20):
        logger.log_scalars({"train/cls_loss": 1.0 / step, "val/cls.accuracy": step / 100}, step)
    (run.run_dir / "summary.json").write_text("{}\n")
    logger.log_artifact(run.run_dir / "summary.json")
    logger.log_artifact(write_png(run.run_dir / "weights.png"))
    logger.log_hparams({"optim.lr": 0.01, "weighting.name": "uw", "trainer.max_steps": None}, {"val/cls.accuracy": 0.2})
    run_id = logger.state()["run_id"]
    logger.close()
    assert not logger.failed

    client = MlflowClient(default_tracking_uri(store_root))
    record = client.get_run(run_id)
    assert record.info.status == "FINISHED"
    assert record.info.run_name == "run1"
    assert client.get_experiment(record.info.experiment_id).name == "mtl-cli"
    assert record.data.params == {"optim.lr": "0.01", "weighting.name": "uw", "trainer.max_steps": "None"}
    assert record.data.tags["override.weighting"] == "uw"
    assert record.data.metrics["final/val/cls.accuracy"] == 0.2
    history = client.get_metric_history(run_id, "train/cls_loss")
    assert [(m.step, m.value) for m in history] == [(10, 0.1), (20, 0.05)]
    assert sorted(a.path for a in client.list_artifacts(run_id)) == ["summary.json", "weights.png"]
    assert (store_root / "mlflow.db").is_file()
    assert list((store_root / "mlruns").rglob("weights.png"))


def test_sweep_jobs_share_one_experiment_and_resume_continues_the_run(run_info, store_root):
    ids = []
    for job in ("0", "1"):
        logger = mlflow_logger()
        logger.start(replace(run_info, run_name=job, group="sweep-a", tracking_root=store_root))
        logger.log_scalars({"train/cls_loss": 1.0}, 10)
        ids.append(logger.state()["run_id"])
        logger.close(failed=job == "1")
    resumed = mlflow_logger()
    resume = {"run_id": ids[1]}
    resumed.start(replace(run_info, group="sweep-a", tracking_root=store_root, resume=resume, resume_step=10))
    resumed.log_scalars({"train/cls_loss": 0.5}, 20)
    assert resumed.state() == {"run_id": ids[1]}
    resumed.close()

    client = MlflowClient(default_tracking_uri(store_root))
    runs = [client.get_run(i) for i in ids]
    assert {r.info.experiment_id for r in runs} == {client.get_experiment_by_name("sweep-a").experiment_id}
    assert all(r.data.tags["sweep"] == "sweep-a" for r in runs)
    assert [m.value for m in client.get_metric_history(ids[1], "train/cls_loss")] == [1.0, 0.5]
    assert client.get_run(ids[1]).info.status == "FINISHED"


def test_file_store_uri(run_info, tmp_path):
    uri = (tmp_path / "filestore").as_uri()
    logger = mlflow_logger(tracking_uri=uri, experiment="mine")
    logger.start(run_info)
    logger.log_scalars({"train/cls_loss": 2.0}, 1)
    logger.close()
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    assert run.data.metrics == {"train/cls_loss": 2.0}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "uri, says",
    [
        ("htp://localhost/x", "unsupported scheme 'htp'"),
        (f"http://127.0.0.1:{closed_port()}", "no MLflow server answers there"),
        ("sqlite:////dev/null/mlflow.db", "cannot create /dev/null"),
    ],
)
def test_bad_tracking_uri_is_one_line_user_error(run_info: RunInfo, uri: str, says: str):
    logger = mlflow_logger(tracking_uri=uri)
    with pytest.raises(UserError, match=says) as caught:
        logger.start(run_info)
    assert "\n" not in str(caught.value)
    assert f"logger.mlflow.tracking_uri={uri!r}" in str(caught.value)
