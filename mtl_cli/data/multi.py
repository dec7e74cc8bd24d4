"""``data=multi``: every task from its own dataset, one batch per task in every training step.

``data.sources.<task>`` is a data config (``name``, ``root``, ``tasks`` ...) laid over the
other ``data.*`` keys (image size, normalisation, augmentation), so each source only says
what differs. Sampling (``data.sampling``):

- ``longest`` (round-robin to the longest): every step takes the next batch of every
  task's loader; an epoch has as many steps as the longest loader has batches, and a
  shorter loader starts a new (reshuffled) pass when it runs out.

A step's batches are joined into one: the images are concatenated (they must have the
same size) and ``slices[task]`` says which rows are the task's, so each task's loss is
computed only on its own batch. Validation goes through each task's validation set in
turn, scoring only that task.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.utils.data import ConcatDataset, DataLoader

from mtl_cli.errors import UserError

NAME = "multi"
SAMPLING = ("longest",)
_OWN_KEYS = ("name", "sources", "sampling", "tasks")


def is_multi(data_cfg: DictConfig) -> bool:
    """Whether ``data_cfg`` is ``data=multi``."""
    return data_cfg.name == NAME


def source_configs(data_cfg: DictConfig, tasks: Sequence[str]) -> dict[str, DictConfig]:
    """The data config of each task's dataset; ``UserError`` when a task has none or its dataset lacks it."""
    if data_cfg.sampling not in SAMPLING:
        raise UserError(f"data.sampling={data_cfg.sampling} is not known; choose one of: {', '.join(SAMPLING)}")
    sources = data_cfg.sources or {}
    missing = [t for t in tasks if t not in sources]
    if missing:
        given = ", ".join(sources) or "none"
        raise UserError(f"data=multi has no dataset for task(s) {', '.join(missing)}; data.sources provides: {given}")
    plain = OmegaConf.to_container(data_cfg, resolve=True)
    assert isinstance(plain, dict)
    common = {k: v for k, v in plain.items() if k not in _OWN_KEYS}
    configs = {}
    for task in tasks:
        source = OmegaConf.merge(common, plain["sources"][task])
        if task not in (source.get("tasks") or {}):
            raise UserError(f"data.sources.{task} (data={source.get('name')}) has no labels for task {task}")
        configs[task] = source
    return configs


def provided_tasks(data_cfg: DictConfig, tasks: Sequence[str]) -> Mapping[str, Any]:
    """The per-task facts (``num_classes`` ...) the run's datasets give: ``data.tasks``, or each source's own.

    Under ``data=multi`` a task without a source that labels it is a ``UserError``.
    """
    if not is_multi(data_cfg):
        return data_cfg.tasks
    return {task: source.tasks.get(task) for task, source in source_configs(data_cfg, tasks).items()}


def join_batches(batches: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One batch from one batch per task: images concatenated, ``slices[task]`` the task's rows."""
    sizes = {task: tuple(b["image"].shape[1:]) for task, b in batches.items()}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{t} {s}" for t, s in sizes.items())
        raise UserError(f"data=multi: the datasets' images differ in size ({shown}); set data.resize")
    joined: dict[str, Any] = {"image": torch.cat([b["image"] for b in batches.values()]), "slices": {}}
    start = 0
    for task, batch in batches.items():
        rows = batch["image"].shape[0]
        joined["slices"][task] = slice(start, start + rows)
        joined[task] = batch[task]
        if "valid" in batch:
            joined.setdefault("valid", {})[task] = batch["valid"][task]
        start += rows
    return joined


def own_rows(preds: Mapping[str, Tensor], slices: Mapping[str, slice]) -> dict[str, Tensor]:
    """Each task's predictions on its own batch's rows only."""
    return {task: pred[slices[task]] for task, pred in preds.items()}


def _reseed(loader: DataLoader, seed: int) -> None:
    """Reseed ``loader``'s shuffling (its generator, and its sampler's epoch under DDP)."""
    if loader.generator is not None:
        loader.generator.manual_seed(seed)
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(seed)  # type: ignore[union-attr]


class MultiTrainLoader:
    """The training batches of ``data=multi`` (sampling ``longest``; see the module docstring).

    ``generator`` is what the trainer reseeds every epoch; each pass over a task's loader
    is shuffled from it, so an epoch's batches do not depend on the epochs before.
    """

    def __init__(self, loaders: Mapping[str, DataLoader]) -> None:
        self.loaders = dict(loaders)
        self.generator = torch.Generator()
        self.dataset = ConcatDataset([loader.dataset for loader in self.loaders.values()])

    def __len__(self) -> int:
        return max(len(loader) for loader in self.loaders.values())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        base = self.generator.initial_seed() * 1009
        passes = dict.fromkeys(self.loaders, 0)
        iterators = {}
        for task, loader in self.loaders.items():
            _reseed(loader, base)
            iterators[task] = iter(loader)
        for _ in range(len(self)):
            batches = {}
            for task, loader in self.loaders.items():
                batch = next(iterators[task], None)
                if batch is None:  # a shorter loader starts its next pass
                    passes[task] += 1
                    _reseed(loader, base + passes[task])
                    iterators[task] = iter(loader)
                    batch = next(iterators[task])
                batches[task] = batch
            yield join_batches(batches)


class MultiValLoader:
    """The validation batches of ``data=multi``: each task's own set in turn, holding only that task's targets."""

    def __init__(self, loaders: Mapping[str, DataLoader]) -> None:
        self.loaders = dict(loaders)
        self.dataset = ConcatDataset([loader.dataset for loader in self.loaders.values()])

    def __len__(self) -> int:
        return sum(len(loader) for loader in self.loaders.values())

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        for loader in self.loaders.values():
            yield from loader


__all__ = [
    "MultiTrainLoader",
    "MultiValLoader",
    "is_multi",
    "join_batches",
    "own_rows",
    "provided_tasks",
    "source_configs",
]
