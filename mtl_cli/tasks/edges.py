"""Edge (object boundary) detection: a binary map per image."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mtl_cli.tasks.base import Task, masked_mean, sample_mask
from mtl_cli.tasks.metrics import EdgeMetrics


class EdgesTask(Task):
    """Binary cross-entropy with a positive-class weight (edges are rare pixels)."""

    kind = "edges"
    dense = True
    primary_metric = "ods_f"

    def __init__(self, name: str, settings: dict) -> None:
        super().__init__(name, settings)
        self.pos_weight = float(settings.get("pos_weight", 4.0))
        self.tolerance = int(settings.get("tolerance", 1))

    @property
    def out_channels(self) -> int:
        return 1

    def loss(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        weight = 1.0 + (self.pos_weight - 1.0) * target
        bce = F.binary_cross_entropy_with_logits(pred.float(), target, reduction="none")
        return masked_mean(bce * weight, sample_mask(valid, target))

    def metrics(self) -> EdgeMetrics:
        return EdgeMetrics(tolerance=self.tolerance)

    def predict(self, pred: Tensor) -> Tensor:
        return pred.float().sigmoid()
