"""The ``det`` kind in mtl-predict and mtl-export: boxes in the image's pixels, their JSON, how to decode the export.

A detection is a row ``(x1, y1, x2, y2, label, score)`` of the task's ``predict`` output
(``xyxy`` pixels with exclusive right / bottom edges, see :mod:`mtl_cli.tasks.detection`).
The model sees each image resized to its input size, and that resize maps pixel edges
by ``x * W / W_in``, ``y * H / H_in``; boxes go back to the image by the same map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mtl_cli.tasks.detection.head import NMS_IOU, STRIDE, grid_size
from mtl_cli.tasks.detection.task import DetectionTask


def boxes_to_image(rows: Tensor, input_size: Sequence[int], size: Sequence[int]) -> Tensor:
    """Detections ``[D, 6]`` in the pixels of the ``input_size`` model input, in those of an image of ``size``.

    ``(H_in, W_in)`` and ``(H, W)``: boxes are scaled by ``W / W_in`` and ``H / H_in``,
    clipped to the image, and dropped when nothing of them is left inside it; padding
    rows (label ``-1``) are dropped too. Order (descending score) is kept.
    """
    (in_h, in_w), (h, w) = (int(v) for v in input_size), (int(v) for v in size)
    out = rows[rows[:, 4] >= 0].float().clone()
    out[:, :4] *= torch.tensor([w / in_w, h / in_h, w / in_w, h / in_h])
    out[:, :4] = torch.minimum(out[:, :4].clamp_min(0), torch.tensor([w, h, w, h], dtype=out.dtype))
    return out[(out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])]


def detection_records(rows: Tensor, names: Sequence[str] | None) -> list[dict[str, Any]]:
    """The ``<image>.<task>.json`` list: ``{"box": [x1, y1, x2, y2], "score", "class", "name"}`` per row."""
    records = []
    for x1, y1, x2, y2, label, score in rows.tolist():
        k = int(label)
        records.append(
            {
                "box": [round(v, 3) for v in (x1, y1, x2, y2)],
                "score": round(score, 5),
                "class": k,
                "name": names[k] if names is not None and k < len(names) else str(k),
            }
        )
    return records


def output_shape(task: DetectionTask, size: Sequence[int]) -> str:
    """The exported output's shape for an ``size = (H, W)`` input: ``[N, K + 4, ceil(H / 4), ceil(W / 4)]``."""
    h, w = grid_size(size)
    return f"[N, {task.out_channels}, {h}, {w}]"


def export_decoding(task: DetectionTask) -> dict[str, Any]:
    """How to turn the exported raw output into boxes, as mtl-predict does (the sidecar's ``decoding``)."""
    k = task.num_classes
    return {
        "stride": STRIDE,
        "heatmap_channels": [0, k],
        "box_channels": [k, k + 4],
        "heatmap": (
            f"channels 0..{k - 1}: one centre-heatmap logit per class and cell; sigmoid gives the score "
            f"of an object of that class centred in the cell"
        ),
        "box": (
            f"channels {k}..{k + 3} at cell (row i, column j): (dx, dy, log_w, log_h) in stride units; "
            f"centre x = (j + 0.5 + dx) * {STRIDE}, centre y = (i + 0.5 + dy) * {STRIDE}, "
            f"width = {STRIDE} * exp(log_w), height = {STRIDE} * exp(log_h); "
            f"box [x1, y1, x2, y2] = centre -/+ size / 2"
        ),
        "box_coordinates": (
            "pixels of the H x W model input, right / bottom edges exclusive; clip to [0, W] x [0, H], "
            "then multiply x by (image width / W) and y by (image height / H) for the original image"
        ),
        "peaks": (
            "a detection is a cell whose sigmoid score is not below any of its 3 x 3 neighbours in its class "
            "channel and is at least score_thresh; keep the max_dets best per image, "
            "then class-wise NMS at IoU nms_iou"
        ),
        "score_thresh": task.score_thresh,
        "max_dets": task.max_dets,
        "nms_iou": NMS_IOU,
    }
