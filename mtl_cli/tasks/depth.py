"""Depth estimation: one distance per pixel; target 0 marks an invalid pixel."""

from __future__ import annotations

from torch import Tensor

from mtl_cli.errors import UserError

from mtl_cli.tasks.base import Task, masked_mean, sample_mask
from mtl_cli.tasks.metrics import DepthMetrics


class DepthTask(Task):
    """Masked L1 (``loss: l1``) or the design's 1/2 squared error (``loss: l2``) over valid pixels.

    ``mean`` and ``std`` (the dataset's typical depth and its spread, default 0 and 1)
    set where the head's output starts and its unit, so it need not learn the scale
    of the targets from zero.
    """

    kind = "depth"
    dense = True
    primary_metric = "abs_err"
    losses = ("l1", "l2", "default")

    def __init__(self, name: str, settings: dict) -> None:
        super().__init__(name, settings)
        self.output_offset = float(self.settings.get("mean", 0.0))
        self.output_scale = float(self.settings.get("std", 1.0))
        if self.output_scale <= 0:
            raise UserError(f"tasks.{name}.std={self.output_scale}: the depth spread must be positive")

    @property
    def out_channels(self) -> int:
        return 1

    def loss(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        mask = (target > 0) & sample_mask(valid, target)
        diff = pred.float() - target
        if self.loss_name == "l2":
            return masked_mean(0.5 * diff.square(), mask)
        return masked_mean(diff.abs(), mask)

    def metrics(self) -> DepthMetrics:
        return DepthMetrics()
