"""Tasks: one class per task kind, looked up by ``tasks.<name>.kind``.

A kind owns everything about its labels (see ``Task``); ``register_task_kind`` adds a
new kind from outside the library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtl_cli.errors import UserError
from mtl_cli.tasks.base import Task
from mtl_cli.tasks.classification import ClassificationTask
from mtl_cli.tasks.depth import DepthTask
from mtl_cli.tasks.detection.task import DetectionTask
from mtl_cli.tasks.edges import EdgesTask
from mtl_cli.tasks.multilabel import MultiLabelTask
from mtl_cli.tasks.normals import NormalsTask
from mtl_cli.tasks.registry import TASK_KINDS, kind_order, register_task_kind, task_kind
from mtl_cli.tasks.segmentation import SegmentationTask

for _builtin in (
    ClassificationTask,
    SegmentationTask,
    DepthTask,
    NormalsTask,
    EdgesTask,
    MultiLabelTask,
    DetectionTask,
):
    register_task_kind(_builtin)
del _builtin


def build_task(name: str, task_cfg: Mapping[str, Any], data_info: Mapping[str, Any] | None) -> Task:
    """Build task ``name`` from its config, filling unset fields from the dataset's facts."""
    task_class = task_kind(task_cfg["kind"], name)
    settings = {k: v for k, v in dict(data_info or {}).items()}
    settings.update({k: v for k, v in task_cfg.items() if v is not None})
    if task_class.needs_num_classes and settings.get("num_classes") is None:
        raise UserError(
            f"task '{name}' needs num_classes: set tasks.{name}.num_classes or data.tasks.{name}.num_classes"
        )
    return task_class(name, settings)


__all__ = ["Task", "TASK_KINDS", "build_task", "kind_order", "register_task_kind", "task_kind"]
