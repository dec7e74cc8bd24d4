"""Helpers of the workflow tests: in-process configs and trainers, CLI processes, comparable records."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY, cli_env
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine.build import build_trainer
from mtl_cli.engine.trainer import Trainer


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread per process (this one and the CLI processes it starts): the tiny models here
    run as fast on one, and on a shared machine spare threads only spin."""
    previous = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(previous)


def compose_cfg(*overrides: str) -> DictConfig:
    """The validated training config of ``mtl-train`` with the tiny settings plus ``overrides``."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*TINY, *overrides])
    return validate(cfg)


def make_trainer(cfg: DictConfig, run_dir: Path | None) -> Trainer:
    """A trainer built as ``train_run`` builds it (same seeding, same checkpoint contents)."""
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    return build_trainer(cfg, run_dir)


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    """metrics.csv without the wall-clock column."""
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(handle)]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def start_train(args: list[str], cwd: Path) -> subprocess.Popen:
    """``mtl-train`` in a child process (stdout/stderr captured as text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mtl_cli.train", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout: float = 300.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)
