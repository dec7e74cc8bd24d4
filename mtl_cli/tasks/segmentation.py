"""Semantic segmentation: one class per pixel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtl_cli.data.checks import check_array, check_class_labels
from mtl_cli.tasks.base import Picture, Task
from mtl_cli.tasks.labels import LabelSpec
from mtl_cli.tasks.metrics import SegmentationMetrics


class SegmentationTask(Task):
    """Per-pixel cross-entropy; pixels labelled ``ignore_index`` do not count.

    Target: int64 ``[H, W]`` class map (``ignore_index`` = no label), stored as a
    one-channel PNG (8/16-bit) or an ``[H, W]`` integer ``.npy``; resampled
    nearest-neighbour so it stays integral.
    """

    kind = "seg"
    dense = True
    primary_metric = "miou"
    needs_num_classes = True
    label_suffixes = (".png", ".npy")

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

    def trivial_output(self, targets: Sequence[Tensor]) -> Tensor:
        """The most frequent class (``background-only on the shapes data``)."""
        labels = torch.cat([t.reshape(-1) for t in targets]).long()
        labels = labels[(labels != self.ignore_index) & (labels >= 0)]
        counts = torch.bincount(labels, minlength=self.num_classes)[: self.num_classes]
        return F.one_hot(counts.argmax(), self.num_classes).float()

    def metrics(self) -> SegmentationMetrics:
        return SegmentationMetrics(self.num_classes, ignore_index=self.ignore_index)

    def predict(self, pred: Tensor) -> Tensor:
        return pred.max(dim=1).indices  # argmax (first maximum), faster on CPU

    @classmethod
    def missing_label(cls, spec: LabelSpec, size: tuple[int, int]) -> Tensor:
        return torch.full(size, spec.ignore_index, dtype=torch.int64)

    @classmethod
    def label_from_array(cls, spec: LabelSpec, array: np.ndarray, path: Path, size: tuple[int, int]) -> Tensor:
        check_array(array, path, [size], "fiu", f"{spec.name} class map aligned with the image")
        assert spec.num_classes is not None
        check_class_labels(array, path, spec.num_classes, spec.ignore_index)
        return torch.from_numpy(np.ascontiguousarray(array.reshape(array.shape[:2]), dtype=np.int64))

    def draw(self, value: Tensor) -> Picture:
        return value.numpy(), {"cmap": "tab10", "vmin": 0, "vmax": 9, "interpolation": "nearest"}
