"""W&B: an offline run's history, config and saved files, read from the run's own files."""

from __future__ import annotations

from dataclasses import replace

import logger_helpers
import pytest
from logger_helpers import wandb_history, wandb_records, write_png

from mtl_cli.errors import UserError
from mtl_cli.loggers import WandbOptions, build_loggers, logger_config
from mtl_cli.loggers.wandb_logger import choose_mode

offline_wandb = logger_helpers.offline_wandb  # autouse: W&B offline in a temp dir
run_info = logger_helpers.run_info


def test_offline_run_history_config_and_files(run_info):
    (logger,) = build_loggers(logger_config(["wandb"]), is_main=True)
    logger.start(replace(run_info, group="sweep-a"))
    for step in (10, 20):
        logger.log_scalars({"train/cls_loss": 1.0 / step}, step)
    logger.log_artifact(write_png(run_info.run_dir / "pareto.png"))
    logger.log_hparams({"optim.lr": 0.01}, {"val/cls.accuracy": 0.75})
    run_id = logger.state()["run_id"]
    logger.close()
    assert not logger.failed

    (run_dir,) = (run_info.run_dir / "wandb").glob(f"offline-run-*-{run_id}")
    run_file = run_dir / f"run-{run_id}.wandb"
    losses = [(row["_step"], row["train/cls_loss"]) for row in wandb_history(run_file) if "train/cls_loss" in row]
    assert losses == [(10, 0.1), (20, 0.05)]
    records = wandb_records(run_file)
    kinds = {r.WhichOneof("record_type"): r for r in records}
    assert kinds["run"].run.run_group == "sweep-a"
    assert "weighting=uw" in kinds["run"].run.tags
    config = {i.key: i.value_json for r in records if r.HasField("config") for i in r.config.update}
    assert config["optim.lr"] == "0.01"
    updates = [i for r in records if r.HasField("summary") for i in r.summary.update]
    summary = {i.key or "/".join(i.nested_key): i.value_json for i in updates}
    assert summary["final/val/cls.accuracy"] == "0.75"
    assert (run_dir / "files" / "pareto.png").is_file()


def test_mode_is_offline_without_credentials_and_checked(monkeypatch):
    monkeypatch.delenv("WANDB_MODE")
    assert choose_mode(None) == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert choose_mode(None) == "online"
    assert choose_mode("offline") == "offline"
    with pytest.raises(UserError, match="logger.wandb.mode='cloud': use one of online, offline, disabled"):
        choose_mode("cloud")


def test_resume_continues_the_same_run_id(run_info):
    config = logger_config(["wandb"], wandb=WandbOptions(project="p"))
    (first,) = build_loggers(config, is_main=True)
    first.start(run_info)
    first.log_scalars({"train/cls_loss": 1.0}, 10)
    first.close()
    (second,) = build_loggers(config, is_main=True)
    second.start(replace(run_info, resume=first.state(), resume_step=10))
    second.log_scalars({"train/cls_loss": 0.5}, 20)
    assert second.state() == first.state()
    second.close()
    # Each start is one offline folder named by its start second and the run id (W&B adds "-1" on a clash).
    run_id = first.state()["run_id"]
    run_dirs = sorted((run_info.run_dir / "wandb").glob(f"offline-run-*-{run_id}*"))
    assert len(run_dirs) == 2
    steps = [[row["_step"] for row in wandb_history(d / f"run-{run_id}.wandb")] for d in run_dirs]
    assert sorted(steps) == [[10], [20]]
