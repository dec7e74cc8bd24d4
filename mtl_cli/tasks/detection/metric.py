"""COCO-style box mAP over a whole validation set, reducible across DDP ranks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from mtl_cli.tasks.detection.boxes import unpack_boxes
from mtl_cli.tasks.metrics import MetricAccumulator

__all__ = ["IOU_THRESHOLDS", "RECALL_THRESHOLDS", "DetectionMetrics"]

# the exact grids of pycocotools' Params (same numpy calls -> bit-identical thresholds)
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


def _iou_xywh(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU ``[D, G]`` of ``xywh`` boxes, float64, with the operation order of pycocotools' ``bbIou``."""
    dx, dy, dw, dh = (dt[:, i : i + 1] for i in range(4))
    gx, gy, gw, gh = (gt[None, :, i] for i in range(4))
    w = np.minimum(dx + dw, gx + gw) - np.maximum(dx, gx)
    h = np.minimum(dy + dh, gy + gh) - np.maximum(dy, gy)
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    union = dw * dh + gw * gh - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


def _xywh(boxes: Tensor) -> np.ndarray:
    b = boxes.detach().to("cpu", torch.float64).reshape(-1, 4).numpy()
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def _match(
    scores: np.ndarray, dt: np.ndarray, gt: np.ndarray, max_dets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching of one image and category at every IoU threshold.

    Detections are taken by descending score (stable: input order breaks ties) up to
    ``max_dets``; each takes the still unmatched GT box of highest IoU that reaches the
    threshold (the last such box on equal IoU, as pycocotools). Returns the kept scores
    ``[D]``, the matched flags ``[T, D]`` and the ignored flags ``[T, D]``: as in
    pycocotools' area range "all", an unmatched detection of negative area (an invalid
    box with ``x2 < x1`` xor ``y2 < y1``) counts neither as true nor as false positive.
    """
    order = np.argsort(-scores, kind="mergesort")[:max_dets]
    scores, dt = scores[order], dt[order]
    matched = np.zeros((len(IOU_THRESHOLDS), len(order)), dtype=bool)
    if len(gt) and len(dt):
        ious = _iou_xywh(dt, gt)
        floor = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]  # [T, 1]
        taken = np.zeros((len(IOU_THRESHOLDS), len(gt)), dtype=bool)
        rows = np.arange(len(IOU_THRESHOLDS))
        last = len(gt) - 1
        for d in range(len(dt)):
            cand = np.where(~taken & (ious[d][None, :] >= floor), ious[d][None, :], -1.0)  # [T, G]
            best = cand.max(axis=1)
            hit = best >= 0
            m = last - np.argmax((cand == best[:, None])[:, ::-1], axis=1)  # last index of the max
            taken[rows[hit], m[hit]] = True
            matched[hit, d] = True
    ignored = ~matched & (dt[:, 2] * dt[:, 3] < 0)[None, :]
    return scores, matched, ignored


def _average_precision(scores: np.ndarray, matched: np.ndarray, ignored: np.ndarray, num_gt: int) -> np.ndarray:
    """101-point interpolated precision averaged over recall, per IoU threshold ``[T]``."""
    order = np.argsort(-scores, kind="mergesort")
    matched, ignored = matched[:, order], ignored[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1).astype(float)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(float)
    ap = np.zeros(len(IOU_THRESHOLDS))
    for t in range(len(IOU_THRESHOLDS)):
        if tp.shape[1] == 0:
            continue
        recall = tp[t] / num_gt
        precision = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
        idx = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
        q = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
        ap[t] = q.mean()
    return ap


class DetectionMetrics(MetricAccumulator):
    """COCO box mAP: ``map`` (IoU .50:.05:.95), ``map_50`` and ``map_75``.

    The semantics are those of ``pycocotools.COCOeval`` (``iouType="bbox"``, area range
    "all", ``maxDets=100``, no crowd boxes): per image and category the ``max_dets``
    highest-scoring detections are greedily matched by score to the GT boxes, the
    precision / recall curve of each category over the whole set is made monotone and
    read at 101 recall points, and the AP is averaged over the categories that have at
    least one GT box (categories only predicted are ignored). IoU follows pycocotools'
    arithmetic on ``xywh`` boxes so results agree at threshold ties too. Detections of
    equal score are ranked in image order (order of ``update`` calls; rank-major after
    ``sync``), as pycocotools ranks them in image-id order.

    ``update(preds, targets, valid=None)`` takes per-image dicts: ``preds[i]`` with
    ``boxes`` ``[D, 4]`` xyxy, ``scores`` ``[D]``, ``labels`` ``[D]`` and ``targets[i]``
    with ``boxes`` ``[G, 4]`` and ``labels`` ``[G]`` (or the packed ``[B, G, 5]`` batch of
    :func:`~mtl_cli.tasks.detection.boxes.pack_boxes`); images with ``valid[i] = False``
    are skipped. Unlike the dense accumulators it copies its (small, variable-length)
    inputs to the CPU at once: decoded detections are already host-synchronised.
    ``sync()`` gathers the per-image records of all ranks with ``all_gather_object``.
    ``compute()`` gives ``nan`` when no image has a GT box.
    """

    higher_is_better: ClassVar[dict[str, bool]] = {"map": True, "map_50": True, "map_75": True}

    def __init__(self, max_dets: int = 100) -> None:
        self.max_dets = int(max_dets)
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.images: list[dict[str, np.ndarray]] = []

    def _init_state(self, device: torch.device) -> None:
        """No tensor state: the per-image records live in ``self.images``."""

    @torch.no_grad()
    def update(  # type: ignore[override]
        self,
        preds: Sequence[dict[str, Tensor]],
        targets: Tensor | Sequence[dict[str, Tensor]],
        valid: Tensor | None = None,
    ) -> None:
        if isinstance(targets, Tensor):
            targets = unpack_boxes(targets)
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        keep = [True] * len(preds) if valid is None else [bool(v) for v in valid.reshape(-1).tolist()]
        if len(keep) != len(preds):
            raise ValueError(f"valid has {len(keep)} entries but the batch has {len(preds)} samples")
        self._ensure_state(torch.device("cpu"))
        for p, t, ok in zip(preds, targets, keep):
            if not ok:
                continue
            self.images.append(
                {
                    "dt": _xywh(p["boxes"]),
                    "scores": p["scores"].detach().to("cpu", torch.float64).reshape(-1).numpy(),
                    "dt_labels": p["labels"].detach().cpu().reshape(-1).long().numpy(),
                    "gt": _xywh(t["boxes"]),
                    "gt_labels": t["labels"].detach().cpu().reshape(-1).long().numpy(),
                }
            )
        self._updated_since_sync = True

    def sync(self) -> None:
        """Gather every rank's per-image records (rank order); no-op without torch.distributed."""
        if not (dist.is_available() and dist.is_initialized()) or self._already_synced():
            return
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, self.images)
        self.images = [record for part in gathered for record in part]
        self._ensure_state(torch.device("cpu"))
        self._synced = True
        self._updated_since_sync = False

    def per_class_ap(self) -> dict[int, np.ndarray]:
        """AP per IoU threshold ``[T]`` of every category with a GT box."""
        classes = sorted({int(c) for im in self.images for c in im["gt_labels"]})
        out = {}
        for c in classes:
            scores, matched, ignored, num_gt = [], [], [], 0
            for im in self.images:
                g, d = im["gt_labels"] == c, im["dt_labels"] == c
                num_gt += int(g.sum())
                s, m, ig = _match(im["scores"][d], im["dt"][d], im["gt"][g], self.max_dets)
                scores.append(s)
                matched.append(m)
                ignored.append(ig)
            out[c] = _average_precision(
                np.concatenate(scores), np.concatenate(matched, axis=1), np.concatenate(ignored, axis=1), num_gt
            )
        return out

    def compute(self) -> dict[str, float]:
        aps = self.per_class_ap()
        if not aps:
            return {name: float("nan") for name in self.higher_is_better}
        table = np.stack(list(aps.values()))  # [K, T]
        i50 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5)))
        i75 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.75)))
        return {
            "map": float(table.mean()),
            "map_50": float(table[:, i50].mean()),
            "map_75": float(table[:, i75].mean()),
        }
