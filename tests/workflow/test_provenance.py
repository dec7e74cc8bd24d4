"""Reproducibility records: versions, git commit, command lines, RNG capture."""

from __future__ import annotations

import random
import shlex
import subprocess

import numpy as np
import pytest
import torch
from conftest import REPO
from wf_helpers import compose_cfg, one_thread  # noqa: F401 (autouse)

from mtl_cli.commands import command_line, resume_command
from mtl_cli.engine.provenance import environment_record, git_record, library_versions
from mtl_cli.engine.rng import capture_rng_state, restore_rng_state
from mtl_cli.engine.run import train_run
from mtl_cli.errors import UserError


def test_environment_names_versions_and_the_checkout_commit():
    record = environment_record()
    assert record["mtl_cli"] and record["python"]
    assert record["libraries"]["torch"] == torch.__version__
    assert {"torchvision", "hydra-core", "omegaconf", "numpy"} <= set(record["libraries"])
    if (REPO / ".git").exists():
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert record["git"]["commit"] == head.strip() and isinstance(record["git"]["dirty"], bool)
    assert "not-a-distribution" not in library_versions(["torch", "not-a-distribution"])


def test_no_git_record_outside_a_checkout(tmp_path):
    assert git_record(tmp_path) is None


def test_command_lines_survive_the_shell():
    line = command_line("mtl-train", ["task=cls+seg", "data.root=/my data", "x='q'"])
    assert shlex.split(line) == ["mtl-train", "task=cls+seg", "data.root=/my data", "x='q'"]
    resume = resume_command(["task=cls", "trainer.resume=old"], "/runs/a b")
    assert shlex.split(resume) == ["mtl-train", "task=cls", "trainer.resume=/runs/a b"]


def test_rng_state_round_trip():
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(3)
    restore_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])
    assert all(isinstance(v, torch.Tensor) for v in (state["torch"], state["python"]["state"], state["numpy"]["keys"]))


def test_summary_records_config_command_and_directions(tmp_path):
    cfg = compose_cfg("trainer.epochs=1", "trainer.vis_images=0", "trainer.progress=false")
    summary = train_run(cfg, tmp_path / "run", overrides=["trainer.epochs=1"], command="mtl-train trainer.epochs=1")
    assert summary["command"] == "mtl-train trainer.epochs=1" and summary["overrides"] == ["trainer.epochs=1"]
    assert summary["config"]["trainer"]["epochs"] == 1 and summary["config"]["optim"]["name"] == "adam"
    assert summary["metric_directions"] == {"cls": {"accuracy": True}, "seg": {"miou": True, "pixel_accuracy": True}}
    assert summary["primary_metrics"] == {"cls": "accuracy", "seg": "miou"}
    with pytest.raises(UserError, match="already holds an earlier run"):
        train_run(cfg, tmp_path / "run")
