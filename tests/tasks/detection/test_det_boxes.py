"""Boxes from instance maps, box geometry under flips and scale-crops, packing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl_cli.tasks.detection.boxes import (
    boxes_from_instances,
    crop_resize_boxes,
    hflip_boxes,
    pack_boxes,
    unpack_boxes,
)
from mtl_cli.tasks.geometry import Geometry


def _brute_force(inst: np.ndarray, classes, min_pixels: int):
    boxes, labels = [], []
    for i in range(1, len(classes) + 1):
        rows, cols = np.nonzero(inst == i)
        if len(rows) >= max(min_pixels, 1):
            boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
            labels.append(classes[i - 1])
    return np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64)


def test_hand_made_map_exclusive_edges_and_min_pixels():
    inst = np.zeros((6, 8), dtype=np.uint8)
    inst[1:3, 2:5] = 1  # 6 pixels: cols 2..4, rows 1..2
    inst[4, 7] = 2  # a single visible pixel
    inst[5, 0:2] = 3  # 2 pixels
    boxes, labels = boxes_from_instances(inst, [3, 0, 2, 1], min_pixels=2)
    assert boxes.dtype == torch.float32 and labels.dtype == torch.int64
    assert boxes.tolist() == [[2.0, 1.0, 5.0, 3.0], [0.0, 5.0, 2.0, 6.0]]
    assert labels.tolist() == [3, 2]  # instance 4 (class 1) has no visible pixel
    boxes, labels = boxes_from_instances(torch.from_numpy(inst), [3, 0, 2, 1], min_pixels=1)
    assert boxes[1].tolist() == [7.0, 4.0, 8.0, 5.0] and labels.tolist() == [3, 0, 2]


def test_empty_map_and_bad_ids():
    boxes, labels = boxes_from_instances(np.zeros((4, 4), dtype=np.uint8), [0, 1], min_pixels=1)
    assert boxes.shape == (0, 4) and labels.shape == (0,)
    with pytest.raises(ValueError, match="instance ids"):
        boxes_from_instances(np.full((2, 2), 3, dtype=np.uint8), [0, 1], min_pixels=1)


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    inst = rng.integers(0, 6, size=(13, 17)).astype(np.uint8)
    inst[inst == 5] = 0
    inst[:, :3][inst[:, :3] == 4] = 0
    inst[inst == 4] = 0 if seed % 2 else 4  # sometimes an instance with no pixel at all
    classes = rng.integers(0, 4, size=5).tolist()
    for min_pixels in (0, 1, 30, 60):
        got_b, got_l = boxes_from_instances(inst, classes, min_pixels)
        exp_b, exp_l = _brute_force(inst, classes, min_pixels)
        np.testing.assert_array_equal(got_b.numpy(), exp_b)
        np.testing.assert_array_equal(got_l.numpy(), exp_l)


def test_hflip_matches_flipped_map_and_is_an_involution():
    rng = np.random.default_rng(0)
    inst = (rng.random((10, 12)) < 0.3).astype(np.uint8) * rng.integers(1, 4, size=(10, 12)).astype(np.uint8)
    boxes, _ = boxes_from_instances(inst, [0, 1, 2], 1)
    flipped, _ = boxes_from_instances(inst[:, ::-1].copy(), [0, 1, 2], 1)
    assert torch.equal(hflip_boxes(boxes, 12), flipped)
    assert torch.equal(hflip_boxes(hflip_boxes(boxes, 12), 12), boxes)


def test_crop_resize_matches_resampled_map():
    """A 2x zoom of the instance map (nearest) gives the geometrically moved boxes."""
    inst = np.zeros((16, 16), dtype=np.uint8)
    inst[5:9, 6:10] = 1  # inside the crop
    inst[2:7, 11:14] = 2  # partly cut by the crop (right side)
    crop = (4, 4, 8, 8)  # top, left, h, w
    boxes, labels = boxes_from_instances(inst, [0, 1], 1)
    moved, moved_labels = crop_resize_boxes(boxes, labels, crop, (16, 16), min_visible=0.0)
    zoomed = Geometry(size=(16, 16), box=crop).nearest(torch.from_numpy(inst).long())
    expected, expected_labels = boxes_from_instances(zoomed, [0, 1], 1)
    assert torch.equal(moved, expected) and torch.equal(moved_labels, expected_labels)


def test_crop_rule_drops_boxes_mostly_outside_or_too_small():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # 36 % inside the crop below -> kept
            [-6.0, 0.0, 4.0, 10.0],  # 0 % inside -> dropped
            [0.0, 0.0, 10.0, 5.0],  # 6x1 px inside: 12 % -> dropped
            [5.0, 5.0, 5.5, 8.0],  # 0.5 px wide, 1 px after a 2x zoom -> kept
            [6.0, 6.0, 6.4, 9.0],  # 0.8 px after the zoom -> dropped
        ]
    )
    labels = torch.arange(5)
    out, kept = crop_resize_boxes(boxes, labels, (4, 4, 12, 12), (24, 24))
    assert kept.tolist() == [0, 3]
    assert out.tolist() == [[0.0, 0.0, 12.0, 12.0], [2.0, 2.0, 3.0, 8.0]]
    out, kept = crop_resize_boxes(boxes, labels, (4, 4, 12, 12), (24, 24), min_visible=0.4)
    assert kept.tolist() == [3]


def test_pack_unpack_round_trip():
    targets = [
        {"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 5.0, 5.0]]), "labels": torch.tensor([2, 0])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    packed = pack_boxes(targets)
    assert packed.shape == (2, 2, 5) and packed[1, :, 4].tolist() == [-1.0, -1.0]
    back = unpack_boxes(packed)
    for a, b in zip(back, targets):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])
    assert pack_boxes([targets[1]]).shape == (1, 0, 5)


def test_default_min_pixels():
    from mtl_cli.tasks.detection.boxes import default_min_pixels

    assert default_min_pixels(64, 64) == 16
    assert default_min_pixels(8, 8) == 1


def test_boxes_of_rendered_scenes_are_tight_around_visible_pixels():
    from mtl_cli.data.shapes.render import _generate

    d = _generate(6, 32, seed=3, return_meta=True)
    kinds = d["params"]["kind"]
    for i in range(6):
        inst = d["instance"][i]
        boxes, labels = boxes_from_instances(inst, kinds[i].tolist(), min_pixels=4)
        ids = [j for j in range(1, kinds.shape[1] + 1) if (inst == j).sum() >= 4]
        assert labels.tolist() == [int(kinds[i, j - 1]) for j in ids]
        for box, j in zip(boxes.long().tolist(), ids):
            x1, y1, x2, y2 = box
            window = inst[y1:y2, x1:x2] == j
            assert window.sum() == (inst == j).sum()  # every visible pixel inside
            assert window[0].any() and window[-1].any() and window[:, 0].any() and window[:, -1].any()
            assert (d["seg"][i][inst == j] == kinds[i, j - 1] + 1).all()  # class = seg class - 1
