"""Task losses against hand-computed values, masks included."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_cli.errors import UserError
from mtl_cli.tasks import build_task


def task(kind, **settings):
    return build_task(kind, {"kind": kind, **settings}, {})


def test_cls_cross_entropy_ignores_unlabelled_samples():
    t = task("cls", num_classes=2)
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    target = torch.tensor([1, 0])
    # sample 0: -log(1/2); sample 1: -log(e^2/(e^2+1))
    expected = (math.log(2) + math.log1p(math.exp(-2))) / 2
    assert t.loss(logits, target).item() == pytest.approx(expected, rel=1e-6)
    only_second = t.loss(logits, target, valid=torch.tensor([False, True]))
    assert only_second.item() == pytest.approx(math.log1p(math.exp(-2)), rel=1e-6)


def test_seg_ignore_index():
    t = task("seg", num_classes=2, ignore_index=-1)
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, 0, 0, 1] = 5.0
    target = torch.tensor([[[0, -1]]])
    assert t.loss(logits, target).item() == pytest.approx(math.log(2), rel=1e-6)


def test_depth_l1_and_half_squared_error_mask_invalid_pixels():
    pred = torch.tensor([[[[1.0, 3.0, 9.0]]]])
    target = torch.tensor([[[[2.0, 1.0, 0.0]]]])  # last pixel invalid
    assert task("depth", loss="l1").loss(pred, target).item() == pytest.approx((1 + 2) / 2)
    assert task("depth", loss="l2").loss(pred, target).item() == pytest.approx((0.5 * 1 + 0.5 * 4) / 2)


def test_depth_unknown_loss_is_user_error():
    with pytest.raises(UserError, match="l1, l2"):
        task("depth", loss="huber")


def test_normals_cosine_loss():
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]).view(1, 3, 1, 2)
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]).view(1, 3, 1, 2)  # 2nd pixel invalid
    assert task("normals").loss(pred, target).item() == pytest.approx(0.0, abs=1e-6)
    pred2 = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]).view(1, 3, 1, 2)
    assert task("normals").loss(pred2, target).item() == pytest.approx(1.0, abs=1e-6)


def test_edges_weighted_bce():
    t = task("edges", pos_weight=3.0)
    pred = torch.zeros(1, 1, 1, 2)
    target = torch.tensor([[[[1.0, 0.0]]]])
    assert t.loss(pred, target).item() == pytest.approx((3 * math.log(2) + math.log(2)) / 2, rel=1e-6)


def test_multilabel_skips_unknown_entries():
    t = task("multilabel", num_classes=3)
    pred = torch.zeros(1, 3)
    target = torch.tensor([[1.0, 0.0, -1.0]])
    assert t.loss(pred, target).item() == pytest.approx(math.log(2), rel=1e-6)


def test_missing_num_classes_is_user_error():
    with pytest.raises(UserError, match="num_classes"):
        build_task("cls", {"kind": "cls"}, {})


def test_unknown_kind_is_user_error():
    with pytest.raises(UserError, match="known kinds"):
        build_task("x", {"kind": "boxes"}, {})
