"""Config composition: every task alone and combined, order-free task=, type-checked overrides."""

from __future__ import annotations

import itertools

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mtl_cli.cli import normalise_task_args
from mtl_cli.config import (
    CONFIG_DIR,
    Device,
    canonical_task_choice,
    known_task_names,
    register_configs,
    task_weights,
    validate,
)
from mtl_cli.config.schema import DEFAULT_WEIGHTING, MTLConfig
from mtl_cli.errors import UserError

ALL = ["cls", "seg", "depth", "normals", "edges", "multilabel", "det"]

register_configs()


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_known_tasks_in_canonical_order():
    known = known_task_names()
    assert known[: len(ALL)] == ALL  # the generic kinds first, then dataset-specific tasks alphabetically
    assert known[len(ALL) :] == sorted(known[len(ALL) :])


@pytest.mark.parametrize("task", ALL)
def test_each_task_alone_composes(task):
    cfg = validate(composed(f"task={task}"))
    assert list(cfg.tasks) == [task]
    assert cfg.tasks[task].kind == task
    assert task_weights(cfg) == {task: 1.0}


def test_every_combination_composes_in_canonical_order():
    for combo in [*itertools.combinations(ALL, 2), ("seg", "depth", "edges"), tuple(ALL)]:
        cfg = composed("task=" + "+".join(combo))
        assert list(cfg.tasks) == list(combo)


def test_order_does_not_matter():
    assert canonical_task_choice("seg+cls") == "cls+seg"
    assert normalise_task_args(["task=normals+cls,seg", "trainer.epochs=1"]) == [
        "task=cls+normals,seg",
        "trainer.epochs=1",
    ]


def test_unknown_task_names_the_task_and_lists_known():
    with pytest.raises(UserError, match=r"unknown task 'segg'.*cls, seg, depth"):
        normalise_task_args(["task=cls+segg"])


def test_repeated_task_is_an_error():
    with pytest.raises(UserError, match="twice"):
        canonical_task_choice("cls+cls")


def test_defaults_and_typed_values():
    cfg = validate(composed())
    assert list(cfg.tasks) == ["cls", "seg"]
    assert cfg.trainer.device == Device.auto
    assert cfg.data.name == "shapes" and cfg.backbone.name == "small_cnn"
    assert cfg.weighting.name == DEFAULT_WEIGHTING == MTLConfig().weighting["name"]  # train.yaml and the schema agree
    assert task_weights(cfg) == {"cls": 1.0, "seg": 1.0}


def test_detection_trains_the_default_budget_unless_told():
    assert composed("task=det").trainer.epochs == 5
    assert composed("task=seg+det").trainer.epochs == 5
    assert composed("task=seg+det", "trainer.epochs=2").trainer.epochs == 2
    assert composed("task=cls+seg").trainer.epochs == 5


def test_loss_weight_override():
    cfg = validate(composed("loss.weights.seg=2"))
    assert task_weights(cfg) == {"cls": 1.0, "seg": 2.0}


def test_wrong_type_is_rejected_at_composition():
    with pytest.raises(Exception, match="trainer.epochs=abc"):
        composed("trainer.epochs=abc")


@pytest.mark.parametrize(
    "override, message",
    [
        ("loss.weights.seg=-1", "finite number >= 0"),
        ("loss.weights.seg=nan", "finite number >= 0"),
        ("trainer.epochs=0", "trainer.epochs=0"),
        ("trainer.batch_size=-4", "trainer.batch_size"),
        ("optim.lr=0", "optim.lr"),
    ],
)
def test_bad_values_are_user_errors(override, message):
    with pytest.raises(UserError, match=message):
        validate(composed(override))


def test_saved_config_round_trips_through_validation():
    cfg = validate(composed("task=cls+seg+depth", "trainer.device=cpu"))
    again = validate(OmegaConf.create(OmegaConf.to_yaml(cfg)))
    assert OmegaConf.to_yaml(again) == OmegaConf.to_yaml(cfg)
