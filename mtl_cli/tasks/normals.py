"""Surface normal estimation: one unit vector per pixel; all-zero targets are invalid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtl_cli.data.checks import check_array, check_range
from mtl_cli.tasks.base import Picture, Task, map_target, masked_mean, sample_mask
from mtl_cli.tasks.geometry import Geometry
from mtl_cli.tasks.labels import LabelSpec
from mtl_cli.tasks.metrics import NormalsMetrics


class NormalsTask(Task):
    """Cosine loss 1 - cos(pred, target) over valid pixels; predictions are L2-normalised.

    Target: float32 ``[3, H, W]`` unit vectors in the camera frame (all-zero = invalid),
    stored as an ``[H, W, 3]`` ``.npy``. Resampled bilinearly and renormalised (invalid
    pixels stay all-zero); a horizontal flip negates the x component.
    """

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

    def trivial_output(self, targets: Sequence[Tensor]) -> Tensor:
        """The mean normal of the valid pixels (unit length)."""
        total = torch.zeros(3)
        for t in targets:
            total += t.float().sum(dim=(0, 2, 3))  # invalid pixels are zero vectors
        return F.normalize(total, dim=0) if total.norm() > 0 else torch.tensor([0.0, 0.0, 1.0])

    def metrics(self) -> NormalsMetrics:
        return NormalsMetrics()

    def predict(self, pred: Tensor) -> Tensor:
        return F.normalize(pred.float(), dim=1)

    @classmethod
    def missing_label(cls, spec: LabelSpec, size: tuple[int, int]) -> Tensor:
        return torch.zeros((3, *size))

    @classmethod
    def label_from_array(cls, spec: LabelSpec, array: np.ndarray, path: Path, size: tuple[int, int]) -> Tensor:
        check_array(array, path, [(*size, 3)], "f", f"{spec.name} unit normals aligned with the image")
        check_range(array, path, -1.0, 1.0, "normal vector components")
        return map_target(array)

    @classmethod
    def transform_label(cls, spec: LabelSpec, target: Tensor, geometry: Geometry) -> Tensor:
        out = geometry.crop(target)
        if geometry.resizes(out):
            valid = geometry.resize_nearest((out.abs().sum(dim=0, keepdim=True) > 0).float()) > 0
            out = geometry.resize_bilinear(out)
            length = out.square().sum(dim=0, keepdim=True).sqrt_().clamp_min_(1e-12)  # faster than F.normalize
            out = out.div_(length).mul_(valid)
        out = geometry.mirror(out)
        if geometry.flip:
            out = out * torch.tensor([-1.0, 1.0, 1.0]).view(3, 1, 1)
        return out

    def draw(self, value: Tensor) -> Picture:
        return ((value.permute(1, 2, 0).numpy() + 1.0) / 2.0).clip(0, 1), {}
