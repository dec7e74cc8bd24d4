"""Data configs, task families and experiment configs compose, and bad data settings are refused."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from data_helpers import compose_cfg
from hydra.core.config_store import ConfigStore

from mtl_cli.cli import normalise_task_args
from mtl_cli.config import CONFIG_DIR, canonical_task_choice, task_families
from mtl_cli.data import DATASETS
from mtl_cli.errors import UserError
from mtl_cli.tasks import TASK_KINDS

DATA_FILES = sorted((CONFIG_DIR / "data").glob("*.yaml"))


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.stem)
def test_each_data_config_names_a_registered_dataset_with_typed_tasks(path):
    cfg = _yaml(path)
    if path.stem == "multi":  # one dataset per task: each source names its own (tests/data/test_multi.py)
        assert cfg["name"] == "multi" and cfg["sources"] == {} and "tasks" not in cfg
        return
    assert cfg["name"] == path.stem and path.stem in DATASETS
    for name, info in cfg["tasks"].items():
        if path.stem != "shapes":
            assert info["kind"] in TASK_KINDS, (path.stem, name)


def test_every_task_file_belongs_to_a_dataset():
    families = task_families()
    members = set(itertools.chain.from_iterable(families.values()))
    assert {p.stem for p in (CONFIG_DIR / "task").glob("*.yaml")} == members
    assert families["multimnist"] == ("left", "mask", "right")
    assert families["nyuv2"] == ("seg", "depth", "normals")
    assert families["celeba"] == ("attribute_groups", "attributes", "per_attribute")


def test_combinations_are_registered_within_families_only():
    options = ConfigStore.instance().repo["task"]
    combos = {name.removesuffix(".yaml") for name in options}
    assert {"cls+seg", "seg+depth+normals", "left+mask+right", "left+right"} <= combos
    assert "left+seg" not in combos and "attributes+cls" not in combos
    assert len(combos) == 120 + 4 + 4  # shapes' seven tasks, multimnist's three, celeba's three files
    assert normalise_task_args(["task=right+left+mask"]) == ["task=left+mask+right"]
    with pytest.raises(
        UserError, match=r"task=left\+seg: no dataset provides all of these tasks.*data=multimnist: left, mask, right"
    ):
        canonical_task_choice("left+seg")


def test_dataset_tasks_compose_with_their_data():
    cfg = compose_cfg("data=multimnist", "task=left+mask+right")
    assert list(cfg.tasks) == ["left", "mask", "right"]
    assert {n: t.kind for n, t in cfg.tasks.items()} == {"left": "cls", "mask": "seg", "right": "cls"}
    cfg = compose_cfg("data=celeba", "task=per_attribute")
    assert len(cfg.tasks) == 40 and set(cfg.tasks) <= set(cfg.data.tasks)


@pytest.mark.parametrize(
    "experiment, tasks, data",
    [("nyuv2_resnet50", ["seg", "depth", "normals"], "nyuv2"), ("cityscapes_resnet50", ["seg", "depth"], "cityscapes")],
)
def test_experiment_configs_pin_the_published_setting(experiment, tasks, data):
    cfg = compose_cfg(f"+experiment={experiment}")
    assert list(cfg.tasks) == tasks and cfg.data.name == data
    assert cfg.backbone.name == "resnet50" and cfg.arch.name == "shared_layers"
    assert cfg.optim.name.value == "adam" and cfg.optim.lr == 1e-4 and cfg.optim.weight_decay == 1e-5
    assert cfg.optim.scheduler.value == "step" and (cfg.optim.step_size, cfg.optim.gamma) == (100, 0.5)
    assert (cfg.trainer.epochs, cfg.trainer.batch_size) == (200, 8)
    assert list(cfg.data.augment.scale) == [1.0, 1.5]
    assert cfg.data.root is None  # the user points it at the data


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.augment.scale=[0.5,1.0]", r"data.augment.scale=\[0.5, 1.0\]: give \[min, max\] with 1.0 <= min <= max"),
        ("data.augment.scale=[1.5,1.2]", r"data.augment.scale"),
        ("data.augment.brightness=1.5", r"data.augment.brightness=1.5: must be in \[0, 1\]"),
        ("data.augment.hue=0.7", r"data.augment.hue=0.7"),
        ("data.resize=[64]", r"data.resize=\[64\]: give \[height, width\]"),
        ("data.num_train=0", r"data.num_train=0"),
        ("data.check_files=-1", r"data.check_files=-1"),
    ],
)
def test_bad_data_settings_are_user_errors(override, message):
    with pytest.raises(UserError, match=message):
        compose_cfg("data=nyuv2", "task=seg", override)
