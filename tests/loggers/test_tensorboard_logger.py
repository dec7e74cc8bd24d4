"""TensorBoard: scalars, hparams and pictures read back with TensorBoard's own event reader."""

from __future__ import annotations

from dataclasses import replace

import logger_helpers
from logger_helpers import write_png
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mtl_cli.loggers import build_loggers, logger_config

offline_wandb = logger_helpers.offline_wandb  # autouse: W&B offline in a temp dir
run_info = logger_helpers.run_info


def read_events(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def test_scalars_hparams_and_pictures_are_written(run_info):
    (logger,) = build_loggers(logger_config(["csv", "tensorboard"]), is_main=True)
    logger.start(run_info)
    for step in (10, 20, 30):
        logger.log_scalars({"train/cls_loss": 1.0 / step, "weight/cls": 0.5}, step)
    logger.log_artifact(write_png(run_info.run_dir / "val_predictions.png"), step=30)
    logger.log_artifact(run_info.run_dir / "summary.json")  # not a picture: TensorBoard has no place for it
    params = {"optim.lr": 0.01, "weighting.name": "uw", "trainer.max_steps": None}
    logger.log_hparams(params, {"val/cls.accuracy": 0.75})
    logger.close()
    assert not logger.failed

    events = read_events(run_info.run_dir / "tensorboard")
    loss = events.Scalars("train/cls_loss")
    assert [e.step for e in loss] == [10, 20, 30]
    assert abs(loss[0].value - 0.1) < 1e-6
    assert events.Images("val_predictions")[0].width == 8
    assert "_hparams_/session_start_info" in events.summary_metadata
    final = events.Scalars("final/val/cls.accuracy")
    assert abs(final[0].value - 0.75) < 1e-6


def test_resume_drops_points_after_the_resume_step(run_info):
    config = logger_config(["tensorboard"])
    (first,) = build_loggers(config, is_main=True)
    first.start(run_info)
    for step in (10, 20, 30):
        first.log_scalars({"train/cls_loss": float(step)}, step)
    first.close()

    (second,) = build_loggers(config, is_main=True)
    second.start(replace(run_info, resume=first.state(), resume_step=20))
    second.log_scalars({"train/cls_loss": -30.0}, 30)
    second.close()

    values = {e.step: e.value for e in read_events(run_info.run_dir / "tensorboard").Scalars("train/cls_loss")}
    assert values == {10: 10.0, 20: 20.0, 30: -30.0}
