"""Multi-label classification: several independent binary labels per image."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mtl_cli.tasks.base import Task, masked_mean, sample_mask
from mtl_cli.tasks.labels import LabelSpec
from mtl_cli.tasks.metrics import MultiLabelMetrics


class MultiLabelTask(Task):
    """Binary cross-entropy per label; target entries < 0 are unknown and skipped.

    Target: float32 ``[num_classes]`` of 1 / 0 (< 0 = unknown); one CSV column per label
    holding 1, 0, -1 or nothing (unknown).
    """

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

    def trivial_output(self, targets: Sequence[Tensor]) -> Tensor:
        """Every label at its frequency in ``targets`` (as a logit)."""
        labels = torch.cat([t.reshape(-1, self.num_classes) for t in targets]).float()
        known = labels >= 0
        freq = (labels.clamp_min(0) * known).sum(0) / known.sum(0).clamp_min(1)
        return torch.logit(freq.clamp(1e-4, 1 - 1e-4))

    def metrics(self) -> MultiLabelMetrics:
        return MultiLabelMetrics(self.num_classes)

    def predict(self, pred: Tensor) -> Tensor:
        return pred.float().sigmoid()

    @classmethod
    def missing_label(cls, spec: LabelSpec, size: tuple[int, int]) -> Tensor:
        return torch.full((int(spec.num_classes or 0),), -1.0)

    @classmethod
    def csv_columns(cls, spec: LabelSpec) -> int:
        return int(spec.num_classes or 0)

    @classmethod
    def label_from_cells(cls, spec: LabelSpec, cells: Sequence[str]) -> Tensor | None:
        values = [-1.0 if c == "" else float(int(c)) for c in cells]
        if any(v not in (-1.0, 0.0, 1.0) for v in values):
            raise ValueError(",".join(cells))
        return torch.tensor(values, dtype=torch.float32)

    @classmethod
    def cells_expected(cls, spec: LabelSpec) -> str:
        return "1, 0, -1 or empty"

    def describe(self, value: Tensor) -> str:
        return str([i for i, v in enumerate(value.tolist()) if v > 0.5])
