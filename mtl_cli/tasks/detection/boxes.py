"""Box labels: boxes from instance maps, their geometry under joint transforms, batching.

Coordinates are ``xyxy`` in pixels with *exclusive* right / bottom edges: pixel
``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``, so a box around the pixels
with columns ``c0..c1`` and rows ``r0..r1`` is ``(c0, r0, c1 + 1, r1 + 1)`` and its
width ``x2 - x1`` is the number of pixel columns it spans. Under this convention a
flip or resize of the image maps box edges by the same affine formula as pixel edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MIN_PIXEL_FRACTION",
    "MIN_VISIBLE_FRACTION",
    "boxes_from_instances",
    "crop_resize_boxes",
    "default_min_pixels",
    "hflip_boxes",
    "instance_boxes",
    "pack_boxes",
    "unpack_boxes",
]

MIN_VISIBLE_FRACTION: float = 0.25
"""Default share of a box's area that must stay inside a crop for the box to be kept."""


MIN_PIXEL_FRACTION: float = 0.004
"""Default min-pixels rule: an instance needs ``0.4 %`` of the image visible (16 px at 64 x 64)."""


def default_min_pixels(height: int, width: int) -> int:
    """The default ``min_pixels`` of an ``height x width`` image: ``max(1, round(MIN_PIXEL_FRACTION * H * W))``."""
    return max(1, round(MIN_PIXEL_FRACTION * int(height) * int(width)))


def instance_boxes(instance_maps: np.ndarray, num_instances: int) -> tuple[np.ndarray, np.ndarray]:
    """Tight boxes and visible-pixel counts of instances ``1..num_instances`` in a batch of maps.

    ``instance_maps`` is an integer ``[B, H, W]`` array (``0`` = background). Returns
    ``boxes`` int64 ``[B, num_instances, 4]`` (``xyxy``, exclusive right / bottom edges;
    zeros for an instance without a visible pixel) and ``counts`` int64 ``[B, num_instances]``.
    """
    b, h, w = instance_maps.shape
    boxes = np.zeros((b, num_instances, 4), dtype=np.int64)
    counts = np.zeros((b, num_instances), dtype=np.int64)
    for i in range(num_instances):
        mask = instance_maps == i + 1
        rows, cols = mask.any(axis=2), mask.any(axis=1)
        counts[:, i] = mask.sum(axis=(1, 2))
        seen = counts[:, i] > 0
        boxes[seen, i, 0] = cols[seen].argmax(axis=1)
        boxes[seen, i, 1] = rows[seen].argmax(axis=1)
        boxes[seen, i, 2] = w - cols[seen, ::-1].argmax(axis=1)
        boxes[seen, i, 3] = h - rows[seen, ::-1].argmax(axis=1)
    return boxes, counts


def boxes_from_instances(
    instance_map: np.ndarray | Tensor, instance_classes: Sequence[int], min_pixels: int
) -> tuple[Tensor, Tensor]:
    """One tight box per visible instance of ``instance_map`` and its class.

    ``instance_map`` is an integer ``[H, W]`` map, ``0`` = background and ``i >= 1`` the
    instance whose class is ``instance_classes[i - 1]``. Each box is tight around the
    instance's *visible* pixels (exclusive right / bottom edges, see the module
    docstring). Instances with fewer than ``min_pixels`` visible pixels are left out
    (the min-pixels rule): a handful of pixels peeking out from behind another object
    or the frame carries too little of the shape to name its kind. Boxes are ordered
    by instance id. Returns ``boxes`` float32 ``[M, 4]`` and ``labels`` int64 ``[M]``.
    """
    inst = instance_map.cpu().numpy() if isinstance(instance_map, Tensor) else np.asarray(instance_map)
    if inst.ndim != 2:
        raise ValueError(f"instance_map must be [H, W], got {tuple(inst.shape)}")
    classes = np.asarray(list(instance_classes), dtype=np.int64)
    n = classes.size
    if inst.size and (int(inst.min()) < 0 or int(inst.max()) > n):
        raise ValueError(f"instance ids must lie in [0, {n}] (one class per instance)")
    boxes, counts = instance_boxes(inst[None], n)
    keep = counts[0] >= max(int(min_pixels), 1)
    return torch.from_numpy(boxes[0, keep].astype(np.float32)), torch.from_numpy(classes[keep])


def hflip_boxes(boxes: Tensor, width: int) -> Tensor:
    """Boxes ``[M, 4]`` of an image ``width`` pixels wide after a horizontal flip."""
    out = boxes.clone()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


def crop_resize_boxes(
    boxes: Tensor,
    labels: Tensor,
    crop: tuple[int, int, int, int],
    size: tuple[int, int],
    min_visible: float = MIN_VISIBLE_FRACTION,
    min_size: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Boxes after cropping ``crop = (top, left, height, width)`` and resizing it to ``size = (H, W)``.

    The crop rule: every box is shifted into the crop and clipped to it. A box is
    dropped when the clipped part keeps less than ``min_visible`` of the box's area
    before cropping (most of the object left the view; its box could no longer be
    told from a part of a larger one; the box area stands in for the visible pixel
    area, which the box label does not carry), or when it is narrower or lower than
    ``min_size`` pixels after resizing. Kept boxes are scaled by ``W / width`` and
    ``H / height`` (the same map as the image pixels, see the module docstring).
    Returns the kept boxes (float32) and their labels.
    """
    top, left, ch, cw = (int(v) for v in crop)
    out_h, out_w = (int(v) for v in size)
    b = boxes.to(torch.float32)
    area = (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)
    shifted = b - torch.tensor([left, top, left, top], dtype=torch.float32)
    clipped = torch.stack(
        [
            shifted[:, 0].clamp(0, cw),
            shifted[:, 1].clamp(0, ch),
            shifted[:, 2].clamp(0, cw),
            shifted[:, 3].clamp(0, ch),
        ],
        dim=1,
    )
    kept_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    scaled = clipped * torch.tensor([out_w / cw, out_h / ch, out_w / cw, out_h / ch], dtype=torch.float32)
    keep = (kept_area >= min_visible * area) & (area > 0)
    keep &= (scaled[:, 2] - scaled[:, 0] >= min_size) & (scaled[:, 3] - scaled[:, 1] >= min_size)
    return scaled[keep], labels[keep]


def pack_boxes(targets: Sequence[dict[str, Tensor]]) -> Tensor:
    """Batch per-image ``{"boxes": [M_i, 4], "labels": [M_i]}`` into one float32 ``[B, M, 5]``.

    Row ``(x1, y1, x2, y2, label)``; images with fewer than ``M = max M_i`` boxes are
    padded with rows whose label is ``-1``.
    """
    m = max((int(t["labels"].numel()) for t in targets), default=0)
    out = torch.zeros((len(targets), m, 5), dtype=torch.float32)
    out[:, :, 4] = -1
    for i, t in enumerate(targets):
        k = int(t["labels"].numel())
        out[i, :k, :4] = t["boxes"].reshape(k, 4).to(torch.float32)
        out[i, :k, 4] = t["labels"].to(torch.float32)
    return out


def unpack_boxes(packed: Tensor) -> list[dict[str, Tensor]]:
    """Inverse of :func:`pack_boxes`: per-image ``{"boxes": float32 [M_i, 4], "labels": int64 [M_i]}``."""
    out = []
    for rows in packed:
        real = rows[:, 4] >= 0
        out.append({"boxes": rows[real, :4].to(torch.float32), "labels": rows[real, 4].long()})
    return out
