"""Where training stands: the run's ``TrainState`` and the running sums of a partly done epoch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0
    step: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    best_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    last_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    train_seconds: float = 0.0
    train_images: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # the metrics.csv rows so far

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> TrainState:
        """The state saved in a checkpoint (keys this version does not know are ignored)."""
        return cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})


@dataclass
class EpochProgress:
    """The running sums of one epoch; saved when training stops in the middle of it."""

    epoch: int
    batches: int  # loader batches done
    steps: int  # optimiser steps done
    sums: Tensor  # [2, tasks]: running loss and weight sums
    first_bad_step: Tensor  # per task: the first step with a non-finite loss, -1 if none
    images: int = 0
    seconds: float = 0.0

    @classmethod
    def start(cls, epoch: int, num_tasks: int, device: torch.device) -> EpochProgress:
        """The progress of an epoch that has not begun."""
        first_bad = torch.full((num_tasks,), -1, dtype=torch.long, device=device)
        return cls(epoch, 0, 0, torch.zeros(2, num_tasks, device=device), first_bad)

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any], device: torch.device) -> EpochProgress:
        """The progress saved in a mid-epoch checkpoint, its tensors on ``device``."""
        values = {f.name: saved[f.name] for f in fields(cls)}
        values["sums"] = values["sums"].to(device)
        values["first_bad_step"] = values["first_bad_step"].to(device)
        return cls(**values)
