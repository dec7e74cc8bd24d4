"""Semantic segmentation: one class per pixel."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mtl_cli.tasks.base import Task
from mtl_cli.tasks.metrics import SegmentationMetrics


class SegmentationTask(Task):
    """Per-pixel cross-entropy; pixels labelled ``ignore_index`` do not count."""

    kind = "seg"
    dense = True
    primary_metric = "miou"
    needs_num_classes = True

    def __init__(self, name: str, settings: dict) -> None:
        super().__init__(name, settings)
        self.num_classes = int(settings["num_classes"])
        ignore = settings.get("ignore_index")
        self.ignore_index = -1 if ignore is None else int(ignore)

    @property
    def out_channels(self) -> int:
        return self.num_classes

    def loss(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        if valid is not None:
            target = target.masked_fill(~valid.view(-1, 1, 1), self.ignore_index)
        return F.cross_entropy(pred.float(), target, ignore_index=self.ignore_index)

    def metrics(self) -> SegmentationMetrics:
        return SegmentationMetrics(self.num_classes, ignore_index=self.ignore_index)

    def predict(self, pred: Tensor) -> Tensor:
        return pred.argmax(dim=1)
