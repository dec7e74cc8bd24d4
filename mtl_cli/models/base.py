"""The interface every sharing architecture implements."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar

from torch import Tensor, nn


class MultiTaskModel(nn.Module, abc.ABC):
    """A network that maps images to one prediction per task.

    ``forward(images)`` returns ``{task: prediction}``; with ``return_features=True`` it
    also returns the shared representation (a tensor every task's prediction is computed
    from, batch first), which feature-level gradient methods differentiate against.

    Parameters are split into task-specific blocks and the shared rest: each name in
    ``per_task_modules`` is an ``nn.ModuleDict`` attribute keyed by task name, and a task's
    block is its entry in each of them. Everything else is shared. So ``shared_parameters``,
    the ``task_parameters`` of every task and ``parameter_counts`` always partition the
    model's parameters.
    """

    task_names: list[str]
    per_task_modules: ClassVar[tuple[str, ...]] = ("heads",)

    @abc.abstractmethod
    def forward(self, images: Tensor, return_features: bool = False):  # type: ignore[override]
        """``{task: prediction}``, or ``({task: prediction}, shared_features)``."""

    def task_named_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """``task``'s own parameters, named relative to its block (``heads.fc.weight``).

        Tasks whose blocks have the same structure get the same names, which is how the
        relation regulariser pairs them.
        """
        return {
            f"{attr}.{name}": param
            for attr in self.per_task_modules
            for name, param in getattr(self, attr)[task].named_parameters()
        }

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """Parameters only ``task`` owns."""
        return list(self.task_named_parameters(task).values())

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every parameter that no task owns (what the tasks share)."""
        owned = {id(p) for task in self.task_names for p in self.task_parameters(task)}
        return [p for p in self.parameters() if id(p) not in owned]

    def parameter_counts(self) -> dict[str, int]:
        """Total, shared and per-task parameter counts."""
        counts = {"total": sum(p.numel() for p in self.parameters())}
        counts["shared"] = sum(p.numel() for p in self.shared_parameters())
        for task in self.task_names:
            counts[task] = sum(p.numel() for p in self.task_parameters(task))
        return counts

    def save_records(self, run_dir: Path) -> list[Path]:
        """Write what the architecture learned about the tasks into ``run_dir``; return the files."""
        return []
