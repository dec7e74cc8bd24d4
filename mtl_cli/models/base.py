"""The interface every sharing architecture implements."""

from __future__ import annotations

import abc

from torch import Tensor, nn


class MultiTaskModel(nn.Module, abc.ABC):
    """A network that maps images to one prediction per task.

    ``forward(images)`` returns ``{task: prediction}``; with ``return_features=True`` it
    also returns the shared representation (the tensor every task reads), which
    feature-level gradient methods differentiate against. ``shared_parameters`` and
    ``task_parameters`` tell the weighting methods which parameters are shared.
    """

    task_names: list[str]

    @abc.abstractmethod
    def forward(self, images: Tensor, return_features: bool = False):  # type: ignore[override]
        """``{task: prediction}``, or ``({task: prediction}, shared_features)``."""

    @abc.abstractmethod
    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every task's loss depends on."""

    @abc.abstractmethod
    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """Parameters only ``task`` uses."""

    def parameter_counts(self) -> dict[str, int]:
        """Total, shared and per-task parameter counts."""
        counts = {"total": sum(p.numel() for p in self.parameters())}
        counts["shared"] = sum(p.numel() for p in self.shared_parameters())
        for task in self.task_names:
            counts[task] = sum(p.numel() for p in self.task_parameters(task))
        return counts
