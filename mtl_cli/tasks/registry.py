"""The task-kind registry: ``tasks.<name>.kind`` -> task class, in canonical order."""

from __future__ import annotations

from mtl_cli.errors import UserError
from mtl_cli.tasks.base import Task

TASK_KINDS: dict[str, type[Task]] = {}
"""Every known task kind, in registration order (the built-in kinds first)."""


def register_task_kind(task_class: type[Task]) -> type[Task]:
    """Make a new task kind available (usable as a class decorator).

    Register before ``mtl_cli.train`` (or another entry point) is imported: its config
    registration then offers ``task=<kind>`` and the kind's combinations with other tasks.
    """
    TASK_KINDS[task_class.kind] = task_class
    return task_class


def task_kind(kind: str, name: str) -> type[Task]:
    """The class of task kind ``kind`` (asked for by task ``name``), or a ``UserError``."""
    if kind not in TASK_KINDS:
        raise UserError(
            f"tasks.{name}.kind={kind} is not a known task kind; known kinds: {', '.join(sorted(TASK_KINDS))}"
        )
    return TASK_KINDS[kind]


def kind_order() -> tuple[str, ...]:
    """The task kinds in canonical order: the order tasks named after them are listed and stored."""
    return tuple(TASK_KINDS)
