"""Validation: run the model over a loader and compute every task's metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mtl_cli.tasks import Task


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Mapping],
    tasks: Sequence[Task],
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    memory_format: torch.memory_format = torch.preserve_format,
) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` over everything ``loader`` yields (model left in eval mode).

    In a multi-process run each rank evaluates its shard and the metric states are
    reduced over ranks, so every rank returns the metrics of the whole set.
    """
    model.eval()
    accumulators = {task.name: task.metrics() for task in tasks}
    for batch in loader:
        images = batch["image"].to(device, non_blocking=True, memory_format=memory_format)
        with autocast():
            preds = model(images)
        valid = batch.get("valid", {})
        for task in tasks:
            if task.name not in batch:  # data=multi: each validation batch scores only its own task
                continue
            target = task.to_device(batch[task.name], device)
            mask = valid.get(task.name)
            output = task.metric_input(preds[task.name].float())
            accumulators[task.name].update(output, target, None if mask is None else mask.to(device))
    results = {}
    for name, acc in accumulators.items():
        acc.sync()
        results[name] = acc.compute()
    return results


def trivial_metrics(tasks: Sequence[Task], loader: Iterable[Mapping]) -> dict[str, dict[str, float]]:
    """``{task: metrics of its trivial predictor}`` (``Task.trivial_metrics``) on the labels of ``loader``.

    In a multi-process run each rank uses its shard's labels.
    """
    targets: dict[str, list[Tensor]] = {task.name: [] for task in tasks}
    for batch in loader:
        for task in tasks:
            if task.name in batch:  # data=multi: each validation batch holds only its own task
                targets[task.name].append(batch[task.name])
    results = {}
    for task in tasks:
        values = task.trivial_metrics(targets[task.name]) if targets[task.name] else None
        if values is not None:
            results[task.name] = values
    return results


def metric_directions(tasks: Sequence[Task]) -> dict[str, dict[str, bool]]:
    """``{task: {metric: higher_is_better}}``."""
    return {task.name: dict(task.metrics().higher_is_better) for task in tasks}
