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
    their height and width (bilinear, antialiased); the epochs after the list train on
    the images as loaded. Labels are never resampled: each task's output is brought back
    to the label size before its loss (``Task.prediction_at``). Validation always sees
    the images as loaded.
    """

    def __init__(self, scales: Sequence[float] = ()) -> None:
        self.scales = [float(s) for s in scales]

    @classmethod
    def for_tasks(cls, scales: Sequence[float], tasks: Sequence[Task]) -> ProgressiveResize:
        """``scales``, or none when a task cannot train on resized inputs (the log says which)."""
        fixed = [task.name for task in tasks if not task.trains_on_resized_inputs]
        if fixed and any(s != 1.0 for s in scales):
            log.info(
                "trainer.progressive_resize is off for this run: task %s needs inputs at their full size",
                ", ".join(fixed),
            )
            return cls()
        return cls(scales)

    def scale(self, epoch: int) -> float:
        """The input scale of ``epoch`` (1.0 after the list)."""
        return self.scales[epoch - 1] if 1 <= epoch <= len(self.scales) else 1.0

    @staticmethod
    def resize(images: Tensor, scale: float) -> Tensor:
        """``images [B, C, H, W]`` resized to ``round(scale * H) x round(scale * W)`` (at least 1 x 1)."""
        h, w = images.shape[-2:]
        size = (max(1, round(scale * h)), max(1, round(scale * w)))
        if size == (h, w):
            return images
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
