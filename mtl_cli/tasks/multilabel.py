"""Multi-label classification: several independent binary labels per image."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mtl_cli.tasks.base import Task, masked_mean, sample_mask
from mtl_cli.tasks.metrics import MultiLabelMetrics


class MultiLabelTask(Task):
    """Binary cross-entropy per label; target entries < 0 are unknown and skipped."""

    kind = "multilabel"
    dense = False
    primary_metric = "map"
    needs_num_classes = True

    def __init__(self, name: str, settings: dict) -> None:
        super().__init__(name, settings)
        self.num_classes = int(settings["num_classes"])

    @property
    def out_channels(self) -> int:
        return self.num_classes

    def loss(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        mask = (target >= 0) & sample_mask(valid, target)
        bce = F.binary_cross_entropy_with_logits(pred.float(), target.clamp_min(0), reduction="none")
        return masked_mean(bce, mask)

    def metrics(self) -> MultiLabelMetrics:
        return MultiLabelMetrics(self.num_classes)

    def predict(self, pred: Tensor) -> Tensor:
        return pred.float().sigmoid()
