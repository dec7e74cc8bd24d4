"""Trivial baselines: the best input-independent prediction of every task kind, from the labels."""

from __future__ import annotations

import pytest
import torch

from mtl_cli.tasks import build_task


def task(kind, **settings):
    return build_task(kind, {"kind": kind, **settings}, {})


def test_cls_trivial_is_the_majority_class():
    t = task("cls", num_classes=3)
    targets = [torch.tensor([2, 2, 0]), torch.tensor([2, 1, -1])]
    assert t.trivial_output(targets).argmax().item() == 2
    assert t.trivial_metrics(targets)["accuracy"] == pytest.approx(3 / 5)


def test_seg_trivial_predicts_the_most_frequent_class_everywhere():
    t = task("seg", num_classes=3, ignore_index=-1)
    target = torch.zeros(2, 4, 4, dtype=torch.int64)
    target[0, :2] = 1
    target[1, 0, 0] = -1
    metrics = t.trivial_metrics([target])
    assert metrics["pixel_accuracy"] == pytest.approx(23 / 31)
    assert metrics["miou"] < 0.5


def test_depth_trivial_is_the_mean_of_the_valid_pixels():
    t = task("depth")
    target = torch.tensor([[[[2.0, 4.0], [0.0, 6.0]]]])
    assert t.trivial_output([target]).item() == pytest.approx(4.0)
    assert t.trivial_metrics([target])["abs_err"] == pytest.approx(4 / 3)


def test_normals_trivial_is_the_unit_mean_normal():
    t = task("normals")
    target = torch.zeros(1, 3, 1, 2)
    target[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    target[0, :, 0, 1] = torch.tensor([0.0, 1.0, 0.0])
    torch.testing.assert_close(t.trivial_output([target]), torch.tensor([1.0, 1.0, 0.0]) / 2**0.5)
    assert t.trivial_metrics([target])["mean_angle"] == pytest.approx(45.0, abs=0.5)


def test_edges_trivial_marks_every_pixel_and_multilabel_uses_the_frequencies():
    edges = task("edges")
    target = torch.zeros(1, 1, 16, 16)
    target[0, 0, 3] = 1
    assert edges.trivial_output([target]).sigmoid().item() > 0.99
    assert edges.trivial_metrics([target])["ods_f"] < 0.5
    multi = task("multilabel", num_classes=2)
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, -1.0]])
    torch.testing.assert_close(multi.trivial_output([labels]).sigmoid(), torch.tensor([0.75, 1 / 3]), atol=1e-4, rtol=0)
