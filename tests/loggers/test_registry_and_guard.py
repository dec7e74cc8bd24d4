"""Choosing loggers (unknown names, missing extras, rank 0 only) and a tracker failing mid-run."""

from __future__ import annotations

import logging
import shutil
import sys

import logger_helpers
import pytest

from mtl_cli.errors import UserError
from mtl_cli.loggers import LoggerConfig, MlflowOptions, build_loggers, check_names, logger_config

offline_wandb = logger_helpers.offline_wandb  # autouse: W&B offline in a temp dir
run_info = logger_helpers.run_info


def test_unknown_logger_lists_the_known_ones():
    with pytest.raises(
        UserError,
        match=r"unknown logger 'tensorbord' in logger=\['csv', 'tensorbord'\]; "
        r"known loggers: csv, tensorboard, mlflow, wandb$",
    ):
        build_loggers(logger_config(["csv", "tensorbord"]), is_main=True)


def test_csv_is_not_a_tracker_and_names_count_once():
    assert check_names(["csv", "mlflow", "tensorboard", "mlflow"]) == ["mlflow", "tensorboard"]
    assert build_loggers(LoggerConfig(), is_main=True) == []


@pytest.mark.parametrize("name", ["tensorboard", "mlflow", "wandb"])
def test_missing_extra_says_which_to_install(monkeypatch, name):
    monkeypatch.setitem(sys.modules, name, None)  # makes `import <name>` fail as when not installed
    with pytest.raises(UserError) as caught:
        build_loggers(logger_config(["csv", name]), is_main=False)
    needs = f'logger={name} needs the {name} extra, which is not installed: pip install -e ".[{name}]"'
    assert str(caught.value) == needs


def test_only_the_main_process_gets_trackers():
    config = logger_config(["csv", "tensorboard"])
    assert build_loggers(config, is_main=False) == []
    assert [logger.name for logger in build_loggers(config, is_main=True)] == ["tensorboard"]


def test_exception_mid_run_is_one_warning_and_the_run_goes_on(run_info, caplog):
    (logger,) = build_loggers(logger_config(["tensorboard"]), is_main=True)
    logger.start(run_info)
    calls = []

    def explode(values, step):
        calls.append(step)
        raise OSError(28, "No space left on device")

    logger.inner.log_scalars = explode
    with caplog.at_level(logging.WARNING, logger="mtl_cli"):
        for step in (10, 20, 30):
            logger.log_scalars({"train/cls_loss": 1.0}, step)
        logger.close()
    assert calls == [10]  # off after the first failure
    assert logger.failed and logger.state() == {}
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "tensorboard logger failed in explode and is off for the rest of the run (the run goes on): "
        "OSError: [Errno 28] No space left on device"
    )


def test_store_directory_gone_mid_run_is_a_warning(run_info, tmp_path, caplog):
    store = tmp_path / "store"
    (logger,) = build_loggers(
        logger_config(["mlflow"], mlflow=MlflowOptions(tracking_uri=store.as_uri())), is_main=True
    )
    logger.start(run_info)
    logger.log_scalars({"train/cls_loss": 1.0}, 10)
    logger.flush()
    shutil.rmtree(store)
    store.write_text("not a directory any more")
    with caplog.at_level(logging.WARNING, logger="mtl_cli"):
        logger.log_scalars({"train/cls_loss": 0.5}, 20)
        logger.close()
    assert logger.failed
    assert any("mlflow logger failed in log_scalars" in r.getMessage() for r in caplog.records)
