"""Edge (object boundary) detection: a binary map per image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtl_cli.data.checks import DataFileError, check_array
from mtl_cli.tasks.base import Task, map_target, masked_mean, sample_mask
from mtl_cli.tasks.labels import LabelSpec
from mtl_cli.tasks.metrics import EdgeMetrics


class EdgesTask(Task):
    """Binary cross-entropy with a positive-class weight (edges are rare pixels).

    Target: float32 ``[1, H, W]`` in {0, 1}, stored as a PNG (non-zero = edge) or an
    ``[H, W]`` ``.npy`` of 0 / 1; resampled nearest-neighbour.
    """

    kind = "edges"
    dense = True
    primary_metric = "ods_f"
    label_suffixes = (".png", ".npy")

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

    def trivial_output(self, targets: Sequence[Tensor]) -> Tensor:
        """Every pixel an edge (a large logit)."""
        return torch.full((1,), 10.0)

    def metrics(self) -> EdgeMetrics:
        return EdgeMetrics(tolerance=self.tolerance)

    def predict(self, pred: Tensor) -> Tensor:
        return pred.float().sigmoid()

    @classmethod
    def missing_label(cls, spec: LabelSpec, size: tuple[int, int]) -> Tensor:
        return torch.zeros((1, *size))

    @classmethod
    def label_from_png(cls, spec: LabelSpec, array: np.ndarray) -> np.ndarray:
        return (array > 0).astype(np.float32)

    @classmethod
    def label_from_array(cls, spec: LabelSpec, array: np.ndarray, path: Path, size: tuple[int, int]) -> Tensor:
        h, w = size
        check_array(array, path, [(h, w), (h, w, 1)], "fiu", f"{spec.name} edge map aligned with the image")
        if not np.isin(array, (0, 1)).all():
            raise DataFileError(f"{path} has edge values other than 0 and 1; expected a binary map")
        return map_target(array)
