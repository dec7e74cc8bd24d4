"""Batching: each task collates its own targets; optional per-sample label masks ride along."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mtl_cli.tasks import Task


class MultiTaskCollate:
    """Collate dataset items ``{"image", <task>: target, "valid"?: {task: bool}}`` into a batch.

    Images are stacked; each task's targets go through ``Task.collate`` (so variable-size
    targets such as detection boxes can batch their own way); ``valid`` flags, when items
    carry them, become one bool tensor per task.
    """

    def __init__(self, tasks: Sequence[Task]) -> None:
        self.tasks = list(tasks)

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {"image": torch.stack([item["image"] for item in items])}
        for task in self.tasks:
            batch[task.name] = task.collate([item[task.name] for item in items])
        if "valid" in items[0]:
            batch["valid"] = {
                task.name: torch.tensor([bool(item["valid"][task.name]) for item in items]) for task in self.tasks
            }
        return batch
