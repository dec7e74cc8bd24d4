"""Progressive resizing: the first epochs train on smaller inputs, at a fraction of the cost per step."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from mtl_cli.tasks import Task

log = logging.getLogger("mtl_cli")


class ProgressiveResize:
    """The input scale of each training epoch (``trainer.progressive_resize``).

    Epoch ``e`` (counted from 1) trains on images resized to ``scales[e - 1]`` times
    their height and width (bilinear, antialiased), but never below ``min_size`` pixels
    on their shorter side (images already smaller than that keep their size); the epochs
    after the list train on the images as loaded. Labels are never resampled: each task's
    output is brought back to the label size before its loss (``Task.prediction_at``).
    Validation always sees the images as loaded.
    """

    def __init__(self, scales: Sequence[float] = (), min_size: int = 1) -> None:
        self.scales = [float(s) for s in scales]
        self.min_size = int(min_size)

    @classmethod
    def for_tasks(cls, scales: Sequence[float], tasks: Sequence[Task], min_size: int = 1) -> ProgressiveResize:
        """``scales``, or none when a task cannot train on resized inputs (the log says which)."""
        fixed = [task.name for task in tasks if not task.trains_on_resized_inputs]
        if fixed and any(s != 1.0 for s in scales):
            log.info(
                "trainer.progressive_resize is off for this run: task %s needs inputs at their full size",
                ", ".join(fixed),
            )
            return cls()
        return cls(scales, min_size)

    def scale(self, epoch: int) -> float:
        """The input scale of ``epoch`` (1.0 after the list), before the ``min_size`` floor."""
        return self.scales[epoch - 1] if 1 <= epoch <= len(self.scales) else 1.0

    def resize(self, images: Tensor, scale: float) -> Tensor:
        """``images [B, C, H, W]`` at ``scale`` times their size, the shorter side at least ``min_size``."""
        h, w = images.shape[-2:]
        scale = min(1.0, max(scale, self.min_size / min(h, w)))
        size = (max(1, round(scale * h)), max(1, round(scale * w)))
        if size == (h, w):
            return images
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
