"""Datasets by name (``data=<name>``) and the batching they share.

A builder turns ``(data config, label specs)`` into raw ``(train, val)`` datasets whose
items hold an image in [0, 1] and one target per task; ``build_datasets`` checks the
selected tasks are provided and adds the joint transforms (augmentation on the training
set, normalisation on both).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset, Sampler

from mtl_cli.data.collate import MultiTaskCollate
from mtl_cli.data.labels import label_specs
from mtl_cli.data.transforms import Augment, AugmentSeedSampler, JointTransform, TransformedDataset
from mtl_cli.errors import UserError
from mtl_cli.tasks.labels import LabelSpec

DatasetBuilder = Callable[[DictConfig, Mapping[str, LabelSpec]], "tuple[Dataset, Dataset]"]


def _shapes(data_cfg: DictConfig, specs: Mapping[str, LabelSpec]) -> tuple[Dataset, Dataset]:
    """The built-in scenes, rendered in [0, 1] (normalised by the shared transform)."""
    from mtl_cli.data.shapes import ShapesDataset

    if data_cfg.num_train is None or data_cfg.num_val is None:
        raise UserError("data=shapes generates its scenes: set data.num_train and data.num_val")
    common = dict(
        image_size=data_cfg.image_size,
        tasks=list(specs),
        mean=[0.0, 0.0, 0.0],
        std=[1.0, 1.0, 1.0],
        cache_dir=data_cfg.cache_dir,
    )
    train = ShapesDataset(num=data_cfg.num_train, seed=data_cfg.seed, **common)
    val = ShapesDataset(num=data_cfg.num_val, seed=data_cfg.seed + 7919, **common)
    return train, val


def _lazy(module: str) -> DatasetBuilder:
    """``mtl_cli.data.<module>.build_<module>``, imported only when that dataset is used."""

    def build(data_cfg: DictConfig, specs: Mapping[str, LabelSpec]) -> tuple[Dataset, Dataset]:
        return getattr(importlib.import_module(f"mtl_cli.data.{module}"), f"build_{module}")(data_cfg, specs)

    return build


DATASETS: dict[str, DatasetBuilder] = {
    "shapes": _shapes,
    **{name: _lazy(name) for name in ("nyuv2", "cityscapes", "celeba", "multimnist", "folder", "coco")},
}


def build_datasets(
    data_cfg: DictConfig,
    tasks: Sequence[str],
    task_settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Dataset, Dataset]:
    """The train and validation datasets for ``data.name``, restricted to ``tasks``.

    ``task_settings`` are the built tasks' effective settings (``kind``, ``num_classes``,
    ``ignore_index`` ...); without them each task's ``data.tasks.<name>`` entry is used,
    with the task's name as its kind when the entry names none.
    """
    name = data_cfg.name
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'; known datasets: {', '.join(DATASETS)}")
    provided = list(data_cfg.tasks.keys())
    missing = [t for t in tasks if t not in provided]
    if missing:
        raise UserError(
            f"data={name} has no labels for task(s) {', '.join(missing)}; it provides: {', '.join(provided)}"
        )
    data_tasks = OmegaConf.to_container(data_cfg.tasks, resolve=True)
    assert isinstance(data_tasks, dict)
    if task_settings is None:
        task_settings = {t: {"kind": (data_tasks[t] or {}).get("kind", t)} for t in tasks}
    specs = label_specs(data_tasks, list(tasks), task_settings)
    train, val = DATASETS[name](data_cfg, specs)
    transform = JointTransform(specs, Augment.from_config(data_cfg.augment), data_cfg.mean, data_cfg.std)
    return TransformedDataset(train, transform, augment=True), TransformedDataset(val, transform, augment=False)


def with_augment_seeds(dataset: Dataset, sampler: Sampler[int], seed: int) -> Sampler:
    """The training sampler, its indices paired with augmentation seeds when the dataset augments."""
    if isinstance(dataset, TransformedDataset) and dataset.augment:
        return AugmentSeedSampler(sampler, len(dataset), seed)
    return sampler


__all__ = ["DATASETS", "LabelSpec", "MultiTaskCollate", "build_datasets", "with_augment_seeds"]
