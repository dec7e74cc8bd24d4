"""Validation: run the model over a loader and compute every task's metrics."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from mtl_cli.tasks import Task


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Iterable[Mapping], tasks: Sequence[Task], device: torch.device
) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` over everything ``loader`` yields (model left in eval mode)."""
    model.eval()
    accumulators = {task.name: task.metrics() for task in tasks}
    for batch in loader:
        images = batch["image"].to(device, non_blocking=True)
        preds = model(images)
        valid = batch.get("valid", {})
        for task in tasks:
            target = task.to_device(batch[task.name], device)
            mask = valid.get(task.name)
            accumulators[task.name].update(preds[task.name].float(), target, None if mask is None else mask.to(device))
    results = {}
    for name, acc in accumulators.items():
        acc.sync()
        results[name] = acc.compute()
    return results


def metric_directions(tasks: Sequence[Task]) -> dict[str, dict[str, bool]]:
    """``{task: {metric: higher_is_better}}``."""
    return {task.name: dict(task.metrics().higher_is_better) for task in tasks}
