"""Surface normal estimation: one unit vector per pixel; all-zero targets are invalid."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mtl_cli.tasks.base import Task, masked_mean, sample_mask
from mtl_cli.tasks.metrics import NormalsMetrics


class NormalsTask(Task):
    """Cosine loss 1 - cos(pred, target) over valid pixels; predictions are L2-normalised."""

    kind = "normals"
    dense = True
    primary_metric = "mean_angle"

    @property
    def out_channels(self) -> int:
        return 3

    def loss(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        mask = (target.abs().sum(dim=1) > 0) & sample_mask(valid, target[:, 0])
        cos = (F.normalize(pred.float(), dim=1) * target).sum(dim=1)
        return masked_mean(1.0 - cos, mask)

    def metrics(self) -> NormalsMetrics:
        return NormalsMetrics()

    def predict(self, pred: Tensor) -> Tensor:
        return F.normalize(pred.float(), dim=1)
