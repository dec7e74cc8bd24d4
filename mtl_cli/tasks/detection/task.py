"""The ``det`` task kind: box labels, the CenterNet head, ``L_det``, COCO mAP and box pictures.

One sample's target is a float32 ``[M, 5]`` tensor of rows ``(x1, y1, x2, y2, label)``
(``xyxy`` pixels, exclusive right / bottom edges; see the package docstring). Rows whose
label is ``-1`` are padding: a batch is the same layout ``[B, M_max, 5]``
(:func:`~mtl_cli.tasks.detection.boxes.pack_boxes`), and cached datasets may pad too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from mtl_cli.data.checks import DataFileError
from mtl_cli.tasks.base import Picture, Task
from mtl_cli.tasks.detection.boxes import crop_resize_boxes, hflip_boxes
from mtl_cli.tasks.detection.head import CenterNetHead, decode
from mtl_cli.tasks.detection.loss import detection_loss
from mtl_cli.tasks.detection.metric import DetectionMetrics
from mtl_cli.tasks.geometry import Geometry
from mtl_cli.tasks.labels import LabelSpec

PICTURE_SCORE: float = 0.3
"""Predicted boxes drawn in ``val_predictions.png`` score at least this much."""
PICTURE_SIZE: int = 128
"""Pictures of smaller images are upscaled (nearest) to at least this many pixels, so box names stay legible."""


def box_rows(boxes: Tensor, labels: Tensor) -> Tensor:
    """Boxes ``[M, 4]`` and labels ``[M]`` as one target ``[M, 5]`` (float32)."""
    return torch.cat([boxes.reshape(-1, 4).float(), labels.reshape(-1, 1).float()], dim=1)


def real_rows(target: Tensor) -> Tensor:
    """The rows of a target ``[M, 5]`` that are boxes (padding rows, label ``-1``, removed)."""
    return target[target[:, 4] >= 0]


class DetectionTask(Task):
    """Object detection: one box and class per object.

    Settings: ``num_classes``; ``head_channels`` (the head's width); ``giou_weight``
    (box-regression weight in ``L_det``); ``score_thresh`` / ``max_dets`` (decoding at
    validation); ``class_names`` (labels in pictures, default the class index).
    """

    kind = "det"
    dense = False
    primary_metric = "map"
    needs_num_classes = True
    label_suffixes: ClassVar[tuple[str, ...]] = ()
    trains_on_resized_inputs = False  # boxes and the regression are in input pixels: no progressive resize

    def __init__(self, name: str, settings: dict) -> None:
        super().__init__(name, settings)
        self.num_classes = int(settings["num_classes"])
        self.giou_weight = float(settings.get("giou_weight", 2.0))
        self.score_thresh = float(settings.get("score_thresh", 0.01))
        self.max_dets = int(settings.get("max_dets", 100))
        names = settings.get("class_names")
        self.class_names = [str(n) for n in names] if names else [str(k) for k in range(self.num_classes)]

    @property
    def out_channels(self) -> int:
        return self.num_classes + 4

    def build_head(self, in_channels: int | Sequence[int], strides: Sequence[int] | None = None) -> nn.Module:
        """A CenterNet head on one feature map (``int``) or fusing several (a list of channel counts).

        The head resizes every map it is given onto its own stride-4 grid (a 1x1 projection
        each), so ``strides`` need not be known.
        """
        return CenterNetHead(in_channels, self.num_classes, mid_channels=self.head_channels)

    def build_projection(self, in_channels: int) -> nn.Module:
        """On a shared decoder the task keeps its own CenterNet head (heatmap and box branches)."""
        return self.build_head(in_channels)

    def loss(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        return detection_loss(pred, target, valid, giou_weight=self.giou_weight)

    def metrics(self) -> DetectionMetrics:
        return DetectionMetrics(max_dets=self.max_dets)

    def metric_input(self, pred: Tensor) -> list[dict[str, Tensor]]:
        """Decoded detections (peaks, top-k, NMS): only validation pays for decoding."""
        return decode(pred, score_thresh=self.score_thresh, max_dets=self.max_dets)

    def predict(self, pred: Tensor) -> Tensor:
        """Detections as ``[B, D, 6]`` rows ``(x1, y1, x2, y2, label, score)``; padding rows have label -1."""
        dets = self.metric_input(pred)
        width = max((len(d["scores"]) for d in dets), default=0)
        out = torch.zeros((len(dets), width, 6), device=pred.device)
        out[:, :, 4] = -1
        for i, d in enumerate(dets):
            n = len(d["scores"])
            out[i, :n] = torch.cat([box_rows(d["boxes"], d["labels"]), d["scores"].reshape(-1, 1)], dim=1)
        return out

    # ------------------------------------------------------------------ labels
    @classmethod
    def missing_label(cls, spec: LabelSpec, size: tuple[int, int]) -> Tensor:
        return torch.zeros((0, 5))

    @classmethod
    def label_from_boxes(
        cls, spec: LabelSpec, boxes_xywh: np.ndarray, labels: np.ndarray, size: tuple[int, int], sources: Sequence[str]
    ) -> Tensor:
        """Check ``[M, 4]`` ``(x, y, w, h)`` boxes of an image of ``size = (H, W)``; the target ``[M, 5]``.

        ``sources[i]`` names where box ``i`` came from (file and record) in the one-line
        ``DataFileError`` raised for a box with non-positive width or height, a box reaching
        outside the image, or a label outside ``0..num_classes-1``.
        """
        h, w = size
        b = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        k = int(spec.num_classes or 0)
        for (x, y, bw, bh), label, source in zip(b, lab, sources):
            where = f"{source}: box [x={x:g}, y={y:g}, w={bw:g}, h={bh:g}]"
            if not (np.isfinite([x, y, bw, bh]).all() and bw > 0 and bh > 0):
                raise DataFileError(f"{where} has a non-positive size; expected w > 0 and h > 0")
            if x < 0 or y < 0 or x + bw > w + 1e-3 or y + bh > h + 1e-3:
                raise DataFileError(f"{where} reaches outside the {w}x{h} image")
            if not 0 <= label < k:
                raise DataFileError(f"{source}: class {int(label)} is not a class of task {spec.name} (0..{k - 1})")
        xyxy = np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1)
        xyxy = np.clip(xyxy, 0, [w, h, w, h])  # within the tolerance above
        return box_rows(torch.from_numpy(xyxy), torch.from_numpy(lab))

    @classmethod
    def transform_label(cls, spec: LabelSpec, target: Tensor, geometry: Geometry) -> Tensor:
        """Boxes follow the crop (clipped; dropped under the crop rule), the resize and the flip."""
        rows = real_rows(target)
        boxes, labels = rows[:, :4], rows[:, 4]
        if geometry.box is not None:
            boxes, labels = crop_resize_boxes(boxes, labels, geometry.box, geometry.size)
        if geometry.flip:
            boxes = hflip_boxes(boxes, geometry.size[1])
        return box_rows(boxes, labels)

    # ------------------------------------------------------------------ batching and pictures
    def collate(self, targets: Sequence[Tensor]) -> Tensor:
        """Targets padded to ``[B, M_max, 5]`` with label ``-1`` rows."""
        rows = [real_rows(t) for t in targets]
        out = torch.zeros((len(rows), max((len(r) for r in rows), default=0), 5))
        out[:, :, 4] = -1
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    draws_on_image: ClassVar[bool] = True

    def draw_on_image(self, image: Tensor, value: Tensor) -> Picture:
        """Boxes of a target ``[M, 5]`` or prediction ``[D, 6]`` drawn on an RGB ``image`` in [0, 1]."""
        from torchvision.utils import draw_bounding_boxes

        rows = real_rows(value)
        if rows.shape[1] == 6:
            rows = rows[rows[:, 5] >= PICTURE_SCORE]
        scale = max(1, -(-PICTURE_SIZE // max(image.shape[-2:])))  # small images upscaled: legible names
        pixels = (image.clamp(0, 1) * 255).to(torch.uint8).repeat_interleave(scale, 1).repeat_interleave(scale, 2)
        texts = [self.class_names[int(k)] if 0 <= int(k) < self.num_classes else str(int(k)) for k in rows[:, 4]]
        if rows.shape[1] == 6:
            texts = [f"{t} {s:.2f}" for t, s in zip(texts, rows[:, 5].tolist())]
        if len(rows) == 0:
            return pixels.permute(1, 2, 0).numpy(), {}
        palette = ["#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#984ea3", "#ffff33", "#a65628", "#f781bf"]
        colors = [palette[int(k) % len(palette)] for k in rows[:, 4]]
        drawn = draw_bounding_boxes(pixels, rows[:, :4] * scale, labels=texts, colors=colors, width=1)
        return drawn.permute(1, 2, 0).numpy(), {}
