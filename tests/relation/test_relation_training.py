"""The relation hooks in the training loop: lambda = 0 and measuring leave training exactly as it was."""

from __future__ import annotations

import csv

import pytest
import torch
from conftest import TINY
from hydra import compose, initialize_config_dir

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine.build import build_trainer
from mtl_cli.engine.checkpoint import load_checkpoint
from mtl_cli.engine.run import train_run
from mtl_cli.relation.learner import learned_matrix

register_configs()


def tiny_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return validate(compose("train", overrides=[*TINY, "trainer.progress=false", *overrides]))


def trained_state(tmp_path, *overrides: str, steps: int = 3):
    """Model state after ``steps`` steps, and the run's ``TaskRelation``."""
    trainer = build_trainer(tiny_cfg(*overrides, "trainer.epochs=1", f"trainer.max_steps={steps}"), tmp_path)
    trainer.train_epoch(1)
    return trainer.model.state_dict(), trainer.relation


def same(a, b) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_lambda_zero_and_measuring_are_exactly_unregularised_training(tmp_path):
    task = "task=cls+seg+depth"
    plain, none = trained_state(tmp_path, task)
    assert none is None
    matrix = "relation.matrix={cls: {seg: 1.0}, seg: {depth: 2.0}}"
    off, relation = trained_state(tmp_path, task, "relation=given", "relation.lambda=0.0", matrix)
    assert relation is None and same(plain, off)
    measured, relation = trained_state(tmp_path, task, "relation=learned", "relation.every_n_steps=1")
    assert relation.tracker.run_count == 3 and same(plain, measured)  # incl. BatchNorm statistics
    coupled, _ = trained_state(tmp_path, task, "relation=given", "relation.lambda=0.5", matrix)
    assert not same(plain, coupled)


@pytest.mark.slow
def test_learned_relation_writes_matrices_in_task_order_and_feeds_back(tmp_path):
    _, relation = trained_state(  # train_epoch closes the epoch: averages, writes, feeds back
        tmp_path, "task=cls+seg+depth", "relation=learned", "relation.every_n_steps=2", "relation.lambda=0.1"
    )
    assert relation.task_names == ["cls", "seg", "depth"]
    rows = list(csv.reader((tmp_path / "relations.csv").open()))
    assert rows[0] == ["epoch", "measure", "task", "cls", "seg", "depth"]
    assert [r[:3] for r in rows[1:7]] == [["1", m, t] for m in ("cosine", "lookahead") for t in ("cls", "seg", "depth")]
    assert [r[0] for r in rows[7:]] == ["all"] * 6
    cosine = torch.tensor([[float(v) for v in r[3:]] for r in rows[1:4]])
    torch.testing.assert_close(cosine.diagonal(), torch.ones(3), rtol=0, atol=1e-5)
    torch.testing.assert_close(relation.regularizer.matrix, learned_matrix(cosine), rtol=0, atol=1e-5)
    assert (tmp_path / "relations.png").stat().st_size > 0
    summary = relation.summary()
    assert summary["measurements"] == 2 and sorted(sum(summary["grouping"], [])) == ["cls", "depth", "seg"]


@pytest.mark.slow
def test_resumed_learned_relation_continues_exactly(tmp_path):
    """Stopped after epoch 1 and resumed: the same relations.csv, coupling and weights as one run."""
    args = (
        "task=cls+seg+depth",
        "relation=learned",
        "relation.every_n_steps=3",
        "relation.lambda=0.1",
        "trainer.vis_images=0",
        "optim.scheduler=none",  # the cosine schedule's length follows max_steps, which stops the first part
    )
    train_run(tiny_cfg(*args), tmp_path / "whole")
    train_run(tiny_cfg(*args, "trainer.max_steps=4"), tmp_path / "first")  # 4 steps = epoch 1 of 2
    assert load_checkpoint(tmp_path / "first" / "checkpoints" / "last.pt")["relation"]["tracker"]["run_count"] == 2
    train_run(tiny_cfg(*args, f"trainer.resume={tmp_path / 'first'}"), tmp_path / "resumed")
    assert (tmp_path / "resumed" / "relations.csv").read_text() == (tmp_path / "whole" / "relations.csv").read_text()
    whole = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert torch.equal(whole["relation"]["matrix"], resumed["relation"]["matrix"])
    assert same(whole["model"], resumed["model"])
