"""Tasks: one class per task kind, looked up by ``tasks.<name>.kind``."""

from __future__ import annotations

from typing import Any, Mapping

from mtl_cli.errors import UserError
from mtl_cli.tasks.base import Task
from mtl_cli.tasks.classification import ClassificationTask
from mtl_cli.tasks.depth import DepthTask
from mtl_cli.tasks.edges import EdgesTask
from mtl_cli.tasks.multilabel import MultiLabelTask
from mtl_cli.tasks.normals import NormalsTask
from mtl_cli.tasks.segmentation import SegmentationTask

TASK_KINDS: dict[str, type[Task]] = {
    cls.kind: cls
    for cls in (
        ClassificationTask,
        SegmentationTask,
        DepthTask,
        NormalsTask,
        EdgesTask,
        MultiLabelTask,
    )
}


def register_task_kind(task_class: type[Task]) -> type[Task]:
    """Make a new task kind available (usable as a class decorator)."""
    TASK_KINDS[task_class.kind] = task_class
    return task_class


def build_task(name: str, task_cfg: Mapping[str, Any], data_info: Mapping[str, Any] | None) -> Task:
    """Build task ``name`` from its config, filling unset fields from the dataset's facts."""
    kind = task_cfg["kind"]
    if kind not in TASK_KINDS:
        raise UserError(
            f"tasks.{name}.kind={kind} is not a known task kind; known kinds: {', '.join(sorted(TASK_KINDS))}"
        )
    settings = {k: v for k, v in dict(data_info or {}).items()}
    settings.update({k: v for k, v in task_cfg.items() if v is not None})
    task_class = TASK_KINDS[kind]
    if task_class.needs_num_classes and settings.get("num_classes") is None:
        raise UserError(
            f"task '{name}' needs num_classes: set tasks.{name}.num_classes or data.tasks.{name}.num_classes"
        )
    return task_class(name, settings)


__all__ = ["Task", "TASK_KINDS", "build_task", "register_task_kind"]
