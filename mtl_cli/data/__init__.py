"""Datasets by name (``data=<name>``) and the batching they share."""

from __future__ import annotations

from typing import Callable, Sequence

from omegaconf import DictConfig
from torch.utils.data import Dataset

from mtl_cli.data.collate import MultiTaskCollate
from mtl_cli.errors import UserError

DatasetBuilder = Callable[[DictConfig, Sequence[str]], "tuple[Dataset, Dataset]"]


def _shapes(data_cfg: DictConfig, tasks: Sequence[str]) -> "tuple[Dataset, Dataset]":
    from mtl_cli.data.shapes import ShapesDataset

    common = dict(
        image_size=data_cfg.image_size,
        tasks=tasks,
        mean=list(data_cfg.mean),
        std=list(data_cfg.std),
        cache_dir=data_cfg.cache_dir,
    )
    train = ShapesDataset(num=data_cfg.num_train, seed=data_cfg.seed, **common)
    val = ShapesDataset(num=data_cfg.num_val, seed=data_cfg.seed + 7919, **common)
    return train, val


DATASETS: dict[str, DatasetBuilder] = {
    "shapes": _shapes,
}


def build_datasets(data_cfg: DictConfig, tasks: Sequence[str]) -> "tuple[Dataset, Dataset]":
    """The train and validation datasets for ``data.name``, restricted to ``tasks``."""
    name = data_cfg.name
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'; known datasets: {', '.join(DATASETS)}")
    provided = list(data_cfg.tasks.keys())
    missing = [t for t in tasks if t not in provided]
    if missing:
        raise UserError(
            f"data={name} has no labels for task(s) {', '.join(missing)}; it provides: {', '.join(provided)}"
        )
    return DATASETS[name](data_cfg, tasks)


__all__ = ["DATASETS", "MultiTaskCollate", "build_datasets"]
