"""Image classification: one label per image."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mtl_cli.tasks.base import Task
from mtl_cli.tasks.metrics import ClassificationMetrics


class ClassificationTask(Task):
    """Cross-entropy over ``num_classes`` logits; targets < 0 are ignored."""

    kind = "cls"
    dense = False
    primary_metric = "accuracy"
    needs_num_classes = True

    def __init__(self, name: str, settings: dict) -> None:
        super().__init__(name, settings)
        self.num_classes = int(settings["num_classes"])

    @property
    def out_channels(self) -> int:
        return self.num_classes

    def loss(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        if valid is not None:
            target = target.masked_fill(~valid, -1)
        return F.cross_entropy(pred.float(), target, ignore_index=-1)

    def metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(self.num_classes)

    def predict(self, pred: Tensor) -> Tensor:
        return pred.argmax(dim=1)
