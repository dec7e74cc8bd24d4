"""Image classification: one label per image."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mtl_cli.tasks.base import Task
from mtl_cli.tasks.labels import LabelSpec
from mtl_cli.tasks.metrics import ClassificationMetrics


class ClassificationTask(Task):
    """Cross-entropy over ``num_classes`` logits; targets < 0 are ignored.

    Target: an int64 scalar class index (< 0 = no label); one CSV column ``label``.
    """

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

    def trivial_output(self, targets: Sequence[Tensor]) -> Tensor:
        """The most frequent class (``the majority class``)."""
        labels = torch.cat([t.reshape(-1) for t in targets]).long()
        labels = labels[labels >= 0]
        counts = torch.bincount(labels, minlength=self.num_classes)[: self.num_classes]
        return F.one_hot(counts.argmax(), self.num_classes).float()

    def metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(self.num_classes)

    def predict(self, pred: Tensor) -> Tensor:
        return pred.argmax(dim=1)

    @classmethod
    def missing_label(cls, spec: LabelSpec, size: tuple[int, int]) -> Tensor:
        return torch.tensor(-1, dtype=torch.int64)

    @classmethod
    def csv_columns(cls, spec: LabelSpec) -> int:
        return 1

    @classmethod
    def label_from_cells(cls, spec: LabelSpec, cells: Sequence[str]) -> Tensor | None:
        if cells[0] == "":
            return None
        value = int(cells[0])
        if not 0 <= value < int(spec.num_classes or 0):
            raise ValueError(cells[0])
        return torch.tensor(value, dtype=torch.int64)

    @classmethod
    def cells_expected(cls, spec: LabelSpec) -> str:
        return f"a class index 0..{int(spec.num_classes or 0) - 1}"

    def describe(self, value: Tensor) -> str:
        return str(int(value))
