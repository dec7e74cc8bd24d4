"""CenterNet head, target encoding, loss and decoding."""

from __future__ import annotations

import pytest
import torch

from mtl_cli.tasks.detection.boxes import pack_boxes
from mtl_cli.tasks.detection.head import (
    CenterNetHead,
    cell_boxes,
    cell_regression,
    decode,
    grid_size,
)
from mtl_cli.tasks.detection.loss import (
    detection_loss,
    encode_regression,
    encode_targets,
)
from mtl_cli.tasks.detection.metric import DetectionMetrics

K = 4


def _targets():
    return [
        {
            "boxes": torch.tensor([[3.0, 4.0, 20.0, 30.0], [30.0, 33.0, 61.0, 50.0], [40.0, 2.0, 52.0, 13.0]]),
            "labels": torch.tensor([1, 3, 1]),
        },
        {"boxes": torch.tensor([[10.5, 11.0, 27.0, 22.5]]), "labels": torch.tensor([0])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]


def _perfect_raw(targets, image_size=(64, 64)):
    packed = pack_boxes(targets)
    grid = grid_size(image_size)
    heat = encode_targets(packed, K, grid)
    box_t, weight = encode_regression(packed, grid)
    box_t = torch.where(weight[..., None] > 0, box_t, torch.tensor([0.0, 0.0, 4.0, 4.0]))
    logits = torch.logit(heat.clamp(1e-6, 1 - 1e-6))
    return torch.cat([logits, cell_regression(box_t)], dim=1), heat


def test_encoding_round_trips_through_decode():
    targets = _targets()
    raw, heat = _perfect_raw(targets)
    assert raw.shape == (3, K + 4, 16, 16)
    assert int((heat == 1).sum()) == 4  # one peak per box
    dets = decode(raw, score_thresh=0.5, max_dets=100, image_size=(64, 64))
    for det, tgt in zip(dets, targets):
        order = torch.argsort(det["boxes"][:, 0])
        want = torch.argsort(tgt["boxes"][:, 0])
        torch.testing.assert_close(det["boxes"][order], tgt["boxes"][want], atol=1e-4, rtol=0)
        assert torch.equal(det["labels"][order], tgt["labels"][want])
        assert det["labels"].dtype == torch.int64


def test_cell_regression_inverts_cell_boxes():
    reg = torch.randn(2, 4, 5, 7)
    torch.testing.assert_close(cell_regression(cell_boxes(reg)), reg, atol=1e-5, rtol=0)


def test_perfect_raw_has_lowest_box_loss():
    targets = _targets()
    raw, _ = _perfect_raw(targets)
    perfect = detection_loss(raw, targets, giou_weight=1.0) - detection_loss(raw, targets, giou_weight=0.0)
    assert abs(float(perfect)) < 1e-4
    raw[:, K:] += 0.3
    worse = detection_loss(raw, targets, giou_weight=1.0) - detection_loss(raw, targets, giou_weight=0.0)
    assert float(worse) > 0.05


def test_loss_zero_boxes_finite_gradient_and_valid_mask():
    head = CenterNetHead(16, K, mid_channels=16)
    feats = torch.randn(3, 16, 8, 8, requires_grad=True)
    raw = head(feats, (64, 64))
    empty = [_targets()[2]] * 3
    loss = detection_loss(raw, empty)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()

    raw = head(feats, (64, 64))
    loss = detection_loss(raw, _targets())
    feats.grad = None
    loss.backward()
    assert float(feats.grad.abs().sum()) > 0
    assert all(p.grad is not None for p in head.parameters())
    # valid=False for an image == leaving it out
    masked = detection_loss(raw, _targets(), valid=torch.tensor([True, False, True]))
    dropped = detection_loss(raw[[0, 2]], [_targets()[0], _targets()[2]])
    torch.testing.assert_close(masked, dropped)


def test_multi_scale_input_and_odd_size():
    head = CenterNetHead([8, 16, 32], K, mid_channels=16)
    feats = [torch.randn(2, 8, 17, 15), torch.randn(2, 16, 9, 8), torch.randn(2, 32, 5, 4)]
    raw = head(feats, (66, 60))
    assert raw.shape == (2, K + 4, 17, 15)
    with pytest.raises(ValueError, match="feature maps"):
        head(feats[:2], (66, 60))
    dets = decode(raw, image_size=(66, 60))
    for d in dets:
        assert (d["boxes"][:, 2] <= 60).all() and (d["boxes"][:, 3] <= 66).all() and (d["boxes"] >= 0).all()
        assert len(d["scores"]) <= 100


def test_overfits_two_images():
    torch.manual_seed(0)
    targets = _targets()[:2]
    feats = torch.randn(2, 32, 8, 8)
    head = CenterNetHead(32, K, mid_channels=16)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(100):
        loss = detection_loss(head(feats, (64, 64)), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        dets = decode(head(feats, (64, 64)), score_thresh=0.05)
    m = DetectionMetrics()
    m.update(dets, targets)
    result = m.compute()
    assert result["map_50"] > 0.99, (float(loss), result)
