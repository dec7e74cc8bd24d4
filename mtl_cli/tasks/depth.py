"""Depth estimation: one distance per pixel; target 0 marks an invalid pixel."""

from __future__ import annotations

from torch import Tensor

from mtl_cli.tasks.base import Task, masked_mean, sample_mask
from mtl_cli.tasks.metrics import DepthMetrics


class DepthTask(Task):
    """Masked L1 (``loss: l1``) or the design's 1/2 squared error (``loss: l2``) over valid pixels."""

    kind = "depth"
    dense = True
    primary_metric = "abs_err"
    losses = ("l1", "l2", "default")

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
