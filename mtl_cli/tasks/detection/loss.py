"""Target encoding and the detection loss: one scalar ``L_det`` per batch.

* Heatmap: each GT box puts an elliptical Gaussian of its class on the grid, peak 1 at
  the cell holding the box centre, ``sigma = 0.54 * size / 6`` per axis (as TTFNet);
  boxes of one class combine by ``max``. Loss: CenterNet's penalty-reduced focal loss,
  i.e. ``torchvision.ops.sigmoid_focal_loss`` (``gamma = 2``, no alpha) with the
  peaks as positives, negatives down-weighted by ``(1 - gaussian)^4`` near a centre,
  summed and divided by the number of boxes.
* Boxes: every cell whose Gaussian value reaches ``0.1`` for some box (the one with the
  highest value when boxes overlap) regresses that box with
  ``torchvision.ops.generalized_box_iou_loss``, weighted by the Gaussian value and
  normalised so each box counts once.

``L_det = L_heat + giou_weight * L_box``; images with ``valid = False`` contribute
nothing, and a batch without boxes gives 0 (still connected to the graph).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mtl_cli.tasks.detection.boxes import pack_boxes
from mtl_cli.tasks.detection.head import STRIDE, cell_boxes

__all__ = ["GAUSSIAN_ALPHA", "REGRESSION_MIN_WEIGHT", "detection_loss", "encode_regression", "encode_targets"]

GAUSSIAN_ALPHA: float = 0.54
"""Gaussian sigma = ``GAUSSIAN_ALPHA * box size / 6`` (per axis, in cells)."""
REGRESSION_MIN_WEIGHT: float = 0.1
"""Cells with a lower Gaussian value for every box do not regress a box."""


def _gaussians(packed: Tensor, grid: tuple[int, int]) -> Tensor:
    """Per-box Gaussian ``[B, M, h, w]`` (0 for padding rows), exactly 1 at each centre cell."""
    h, w = grid
    boxes, real = packed[..., :4], packed[..., 4] >= 0
    cx = (boxes[..., 0] + boxes[..., 2]) / (2 * STRIDE)
    cy = (boxes[..., 1] + boxes[..., 3]) / (2 * STRIDE)
    ci = cx.floor().clamp(0, w - 1)
    ri = cy.floor().clamp(0, h - 1)
    sx = (GAUSSIAN_ALPHA * (boxes[..., 2] - boxes[..., 0]) / (6 * STRIDE)).clamp_min(1e-3)
    sy = (GAUSSIAN_ALPHA * (boxes[..., 3] - boxes[..., 1]) / (6 * STRIDE)).clamp_min(1e-3)
    xs = torch.arange(w, dtype=packed.dtype, device=packed.device).view(1, 1, 1, w)
    ys = torch.arange(h, dtype=packed.dtype, device=packed.device).view(1, 1, h, 1)
    dx = (xs - ci[..., None, None]) / sx[..., None, None]
    dy = (ys - ri[..., None, None]) / sy[..., None, None]
    g = torch.exp(-0.5 * (dx * dx + dy * dy))
    return g * real[..., None, None]


def encode_targets(packed: Tensor, num_classes: int, grid: tuple[int, int]) -> Tensor:
    """Heatmap targets ``[B, K, h, w]`` in ``[0, 1]`` (1 exactly at box centres) from packed boxes ``[B, M, 5]``."""
    g = _gaussians(packed, grid)
    b, m, h, w = g.shape
    if m == 0:
        return packed.new_zeros((b, num_classes, h, w))
    onehot = F.one_hot(packed[..., 4].clamp_min(0).long(), num_classes).to(g.dtype)  # [B, M, K]
    return (g[:, :, None] * onehot[..., None, None]).amax(dim=1)


def encode_regression(packed: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Per-cell box targets ``[B, h, w, 4]`` and weights ``[B, h, w]`` (each box's weights sum to 1)."""
    g = _gaussians(packed, grid)
    b, m, h, w = g.shape
    if m == 0:
        return packed.new_zeros((b, h, w, 4)), packed.new_zeros((b, h, w))
    value, owner = g.max(dim=1)  # [B, h, w]
    weight = value * (value >= REGRESSION_MIN_WEIGHT)
    own = F.one_hot(owner, m).to(g.dtype) * weight[..., None]  # [B, h, w, M]
    per_box = own.sum(dim=(1, 2)).clamp_min(1e-12)  # [B, M]
    weight = weight / per_box.gather(1, owner.reshape(b, -1)).reshape(b, h, w)
    target = packed[..., :4].gather(1, owner.reshape(b, -1, 1).expand(-1, -1, 4)).reshape(b, h, w, 4)
    return target, weight


def detection_loss(
    raw: Tensor,
    targets: Tensor | Sequence[dict[str, Tensor]],
    valid: Tensor | None = None,
    giou_weight: float = 2.0,
) -> Tensor:
    """``L_det`` (a scalar) of the raw head output ``[B, K + 4, h, w]``.

    ``targets``: packed boxes ``[B, M, 5]`` (see :func:`~mtl_cli.tasks.detection.boxes.pack_boxes`)
    or per-image ``{"boxes", "labels"}`` dicts; ``valid`` an optional bool mask ``[B]``.
    """
    from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss  # ~2 s to import: only for det runs

    packed = targets if isinstance(targets, Tensor) else pack_boxes(targets)
    packed = packed.to(device=raw.device, dtype=torch.float32)
    b, c, h, w = raw.shape
    k = c - 4
    if packed.shape[0] != b:
        raise ValueError(f"{packed.shape[0]} target rows for a batch of {b}")
    sample = torch.ones(b, device=raw.device) if valid is None else valid.to(raw.device).reshape(b).float()
    raw = raw.float()

    heat_t = encode_targets(packed, k, (h, w))
    pos = (heat_t == 1).float()
    focal = sigmoid_focal_loss(raw[:, :k], pos, alpha=-1, gamma=2, reduction="none")
    focal = focal * torch.where(pos > 0, torch.ones_like(heat_t), (1 - heat_t) ** 4)
    num_boxes = ((packed[..., 4] >= 0).float() * sample[:, None]).sum()
    heat_loss = (focal.sum(dim=(1, 2, 3)) * sample).sum() / num_boxes.clamp_min(1)

    box_t, weight = encode_regression(packed, (h, w))
    weight = weight * sample[:, None, None]
    dummy = torch.tensor([0.0, 0.0, 1.0, 1.0], device=raw.device)
    box_t = torch.where(weight[..., None] > 0, box_t, dummy)  # keeps unweighted cells finite
    giou = generalized_box_iou_loss(cell_boxes(raw[:, k:]).reshape(-1, 4), box_t.reshape(-1, 4))
    box_loss = (giou * weight.reshape(-1)).sum() / num_boxes.clamp_min(1)
    return heat_loss + giou_weight * box_loss
