"""CenterNet-style anchor-free detection head and its decoding (validation only).

Output layout: one tensor ``[B, K + 4, ceil(H / 4), ceil(W / 4)]`` on a stride-4 grid
of the ``H x W`` input image. Channels ``0..K-1`` are per-class centre-heatmap logits;
the last four regress, at every cell, one box ``(dx, dy, log w, log h)`` in stride
units: centre ``((j + 0.5 + dx) * 4, (i + 0.5 + dy) * 4)`` for the cell in row ``i``,
column ``j``, size ``(4 e^{log w}, 4 e^{log h})``. So every cell always describes a
valid box (``x2 > x1``) and any box can be encoded at any cell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NMS_IOU", "STRIDE", "CenterNetHead", "cell_boxes", "cell_regression", "decode", "grid_size"]

STRIDE: int = 4
"""Input pixels per output cell."""
NMS_IOU: float = 0.7
"""IoU above which :func:`decode`'s class-wise NMS drops the lower-scoring of two boxes."""

_MAX_LOG_SIZE = 10.0  # keeps exp() finite on wild early outputs


def grid_size(image_size: Sequence[int]) -> tuple[int, int]:
    """The output grid ``(ceil(H / STRIDE), ceil(W / STRIDE))`` of an ``H x W`` image."""
    h, w = (int(v) for v in image_size)
    return -(-h // STRIDE), -(-w // STRIDE)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CenterNetHead(nn.Module):
    """Fuses one or several feature maps on the stride-4 grid, then predicts heatmaps and boxes.

    Cost is kept near a dense task's decoder: 1x1 projections at the input
    resolutions, one 3x3 convolution on the fused grid, then a 3x3 convolution with
    ``mid_channels // 2`` channels and a 1x1 output in each of the two branches.

    ``in_channels`` is an int for one feature map or a sequence for a list of maps
    (any strides; each is projected by a 1x1 convolution, resized bilinearly to the
    grid and summed, a light FPN). ``forward(features, out_size)`` returns the raw
    ``[B, num_classes + 4, h, w]`` output described in the module docstring.
    """

    def __init__(
        self, in_channels: int | Sequence[int], num_classes: int, mid_channels: int = 64, prior: float = 0.01
    ) -> None:
        super().__init__()
        self.multi_scale = not isinstance(in_channels, int)
        channels = list(in_channels) if self.multi_scale else [int(in_channels)]
        if not channels:
            raise ValueError("in_channels must name at least one feature map")
        self.num_classes = int(num_classes)
        branch = max(mid_channels // 2, 8)
        self.lateral = nn.ModuleList(nn.Conv2d(c, mid_channels, 1) for c in channels)
        self.fuse = _conv_bn_relu(mid_channels, mid_channels)
        self.heat = nn.Sequential(
            nn.Conv2d(mid_channels, branch, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(branch, self.num_classes, 1)
        )
        self.box = nn.Sequential(
            nn.Conv2d(mid_channels, branch, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(branch, 4, 1)
        )
        nn.init.constant_(self.heat[-1].bias, -math.log((1 - prior) / prior))  # focal-loss prior
        nn.init.zeros_(self.box[-1].bias)
        nn.init.constant_(self.box[-1].bias[2:], 1.0)  # start at ~11 px boxes

    def forward(self, features: Tensor | Sequence[Tensor], out_size: tuple[int, int]) -> Tensor:
        maps = [features] if isinstance(features, Tensor) else list(features)
        if len(maps) != len(self.lateral):
            raise ValueError(f"expected {len(self.lateral)} feature maps, got {len(maps)}")
        grid = grid_size(out_size)
        x = sum(
            F.interpolate(proj(m), size=grid, mode="bilinear", align_corners=False)
            if tuple(m.shape[-2:]) != grid
            else proj(m)
            for proj, m in zip(self.lateral, maps)
        )
        x = self.fuse(x)
        return torch.cat([self.heat(x), self.box(x)], dim=1)


def cell_boxes(reg: Tensor) -> Tensor:
    """Boxes ``[B, h, w, 4]`` (xyxy, input pixels) from the four regression channels ``[B, 4, h, w]``."""
    _, _, h, w = reg.shape
    ys = (torch.arange(h, device=reg.device, dtype=reg.dtype) + 0.5).view(1, h, 1)
    xs = (torch.arange(w, device=reg.device, dtype=reg.dtype) + 0.5).view(1, 1, w)
    cx = (xs + reg[:, 0]) * STRIDE
    cy = (ys + reg[:, 1]) * STRIDE
    half_w = 0.5 * STRIDE * reg[:, 2].clamp(max=_MAX_LOG_SIZE).exp()
    half_h = 0.5 * STRIDE * reg[:, 3].clamp(max=_MAX_LOG_SIZE).exp()
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)


def cell_regression(boxes: Tensor) -> Tensor:
    """Inverse of :func:`cell_boxes`: regression channels ``[B, 4, h, w]`` that encode ``boxes [B, h, w, 4]``."""
    _, h, w, _ = boxes.shape
    ys = (torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5).view(1, h, 1)
    xs = (torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5).view(1, 1, w)
    dx = (boxes[..., 0] + boxes[..., 2]) / (2 * STRIDE) - xs
    dy = (boxes[..., 1] + boxes[..., 3]) / (2 * STRIDE) - ys
    log_w = torch.log((boxes[..., 2] - boxes[..., 0]) / STRIDE)
    log_h = torch.log((boxes[..., 3] - boxes[..., 1]) / STRIDE)
    return torch.stack([dx, dy, log_w, log_h], dim=1)


@torch.no_grad()
def decode(
    raw: Tensor,
    score_thresh: float = 0.01,
    max_dets: int = 100,
    image_size: tuple[int, int] | None = None,
    nms_iou: float = NMS_IOU,
) -> list[dict[str, Tensor]]:
    """Detections per image from the raw head output ``[B, K + 4, h, w]``.

    Heatmap peaks (cells not below any of their 3x3 neighbours of the same class) with
    ``sigmoid >= score_thresh`` are the candidates, at most ``max_dets`` per image by
    score; their boxes are clipped to the image (``image_size = (H, W)``, by default
    the grid times the stride) and class-wise NMS at ``nms_iou`` removes the rare
    duplicates that peak picking leaves. Returns ``{"boxes": float32 [D, 4],
    "scores": [D], "labels": int64 [D]}`` per image, by descending score.
    """
    from torchvision.ops import batched_nms  # importing torchvision.ops takes ~2 s: only when decoding

    b, c, h, w = raw.shape
    k = c - 4
    height, width = image_size if image_size is not None else (h * STRIDE, w * STRIDE)
    heat = raw[:, :k].float().sigmoid()
    peaks = heat * (heat == F.max_pool2d(heat, 3, stride=1, padding=1))
    scores, idx = peaks.reshape(b, -1).topk(min(int(max_dets), k * h * w), dim=1)
    labels = idx // (h * w)
    boxes = cell_boxes(raw[:, k:].float()).reshape(b, h * w, 4)
    boxes = boxes.gather(1, (idx % (h * w)).unsqueeze(-1).expand(-1, -1, 4))
    bound = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    boxes = torch.minimum(boxes.clamp_min(0), bound)
    out = []
    for i in range(b):
        keep = scores[i] >= score_thresh
        bx, sc, lb = boxes[i][keep], scores[i][keep], labels[i][keep]
        kept = batched_nms(bx, sc, lb, nms_iou)
        out.append({"boxes": bx[kept], "scores": sc[kept], "labels": lb[kept].long()})
    return out
