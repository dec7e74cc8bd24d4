"""Depth estimation: one distance per pixel; target 0 marks an invalid pixel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtl_cli.data.checks import DataFileError, check_array
from mtl_cli.errors import UserError
from mtl_cli.tasks.base import Picture, Task, map_target, masked_mean, sample_mask
from mtl_cli.tasks.geometry import Geometry
from mtl_cli.tasks.labels import LabelSpec
from mtl_cli.tasks.metrics import DepthMetrics


class DepthTask(Task):
    """Masked L1 (``loss: l1``) or the design's 1/2 squared error (``loss: l2``) over valid pixels.

    Target: float32 ``[1, H, W]`` in metres (0 = invalid), stored as an ``[H, W]`` /
    ``[H, W, 1]`` float ``.npy`` or a 16-bit PNG divided by ``data.tasks.<name>.png_scale``
    (default 1000: millimetres). ``mean`` and ``std`` (the data's typical depth and its
    spread, default 0 and 1) set where the head's output starts and its unit, so it need
    not learn the scale of the targets from zero. Zooming in by ``s`` brings the scene ``s`` times closer, so
    depth is divided by ``s`` (inverse depth, ``data.tasks.<name>.inverse: true``, multiplied).
    """

    kind = "depth"
    dense = True
    primary_metric = "abs_err"
    losses = ("l1", "l2", "default")
    label_suffixes = (".npy", ".png")

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        super().__init__(name, settings)
        self.output_offset = float(self.settings.get("mean", 0.0))
        self.output_scale = float(self.settings.get("std", 1.0))
        if self.output_scale <= 0:
            raise UserError(f"tasks.{name}.std={self.output_scale}: the depth spread must be positive")

    @property
    def out_channels(self) -> int:
        return 1

    def loss(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        mask = (target > 0) & sample_mask(valid, target)
        diff = pred.float() - target
        if self.loss_name == "l2":
            return masked_mean(0.5 * diff.square(), mask)
        return masked_mean(diff.abs(), mask)

    def trivial_output(self, targets: Sequence[Tensor]) -> Tensor:
        """The mean depth of the valid pixels."""
        values = torch.cat([t[t > 0] for t in targets])
        return values.float().mean().reshape(1) if values.numel() else torch.zeros(1)

    def metrics(self) -> DepthMetrics:
        return DepthMetrics()

    @classmethod
    def missing_label(cls, spec: LabelSpec, size: tuple[int, int]) -> Tensor:
        return torch.zeros((1, *size))

    @classmethod
    def label_from_png(cls, spec: LabelSpec, array: np.ndarray) -> np.ndarray:
        return array.astype(np.float32) / float(spec.options.get("png_scale", 1000.0))

    @classmethod
    def label_from_array(cls, spec: LabelSpec, array: np.ndarray, path: Path, size: tuple[int, int]) -> Tensor:
        h, w = size
        check_array(array, path, [(h, w, 1), (h, w)], "f", f"{spec.name} depth aligned with the image")
        if not np.isfinite(array).all() or float(array.min()) < 0:
            raise DataFileError(f"{path} has negative or non-finite depth; expected values >= 0 (0 = invalid)")
        return map_target(array)

    @classmethod
    def transform_label(cls, spec: LabelSpec, target: Tensor, geometry: Geometry) -> Tensor:
        out = geometry.nearest(target)
        if geometry.zoom != 1.0:
            out = out * geometry.zoom if spec.options.get("inverse") else out / geometry.zoom
        return geometry.mirror(out)

    def draw(self, value: Tensor) -> Picture:
        return value[0].numpy(), {"cmap": "viridis"}
