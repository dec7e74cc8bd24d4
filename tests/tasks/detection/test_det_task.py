"""The ``det`` task kind on the task interface: labels, geometry, batching, evaluation, pictures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl_cli.data import MultiTaskCollate
from mtl_cli.data.checks import DataFileError
from mtl_cli.data.labels import label_specs
from mtl_cli.data.shapes import ShapesDataset
from mtl_cli.data.shapes.render import _generate
from mtl_cli.data.transforms import Augment, JointTransform
from mtl_cli.engine.evaluate import evaluate
from mtl_cli.tasks import build_task
from mtl_cli.tasks.detection.boxes import boxes_from_instances, default_min_pixels, pack_boxes
from mtl_cli.tasks.detection.head import cell_regression, grid_size
from mtl_cli.tasks.detection.loss import encode_regression, encode_targets
from mtl_cli.tasks.detection.task import DetectionTask
from mtl_cli.tasks.geometry import Geometry

K = 4
SPECS = label_specs(
    {"det": {"num_classes": K}, "seg": {"num_classes": 5}},
    ["det", "seg"],
    {"det": {"kind": "det"}, "seg": {"kind": "seg"}},
)


def _task(**settings) -> DetectionTask:
    task = build_task("det", {"kind": "det"}, {"num_classes": K, **settings})
    assert isinstance(task, DetectionTask)
    return task


def test_shapes_det_labels_are_the_boxes_of_the_instance_map():
    """The dataset's ``det`` rows are ``boxes_from_instances`` of the same render, min-pixels rule, padded."""
    meta = _generate(10, 32, seed=5, max_objects=3, return_meta=True)
    data = ShapesDataset(10, 32, seed=5, tasks=["det"])
    for i in range(10):
        boxes, labels = boxes_from_instances(
            meta["instance"][i], meta["params"]["kind"][i].tolist(), default_min_pixels(32, 32)
        )
        rows = data[i]["det"]
        assert rows.shape == (3, 5)
        real = rows[rows[:, 4] >= 0]
        assert torch.equal(real[:, :4], boxes) and torch.equal(real[:, 4].long(), labels)
        assert (rows[len(labels) :, 4] == -1).all()


def test_missing_label_is_an_empty_box_list_and_collate_pads():
    task = _task()
    missing = task.missing_label(SPECS["det"], (8, 8))
    assert missing.shape == (0, 5)
    a = torch.tensor([[1.0, 2.0, 5.0, 6.0, 3.0], [0.0, 0.0, 0.0, 0.0, -1.0]])
    batch = MultiTaskCollate([task])(
        [{"image": torch.zeros(3, 8, 8), "det": t, "valid": {"det": v}} for t, v in ((a, True), (missing, False))]
    )
    assert batch["det"].shape == (2, 1, 5)
    assert batch["det"][0, 0].tolist() == a[0].tolist() and batch["det"][1, 0, 4] == -1
    assert batch["valid"]["det"].tolist() == [True, False]
    loss = task.loss(torch.zeros(2, K + 4, 2, 2, requires_grad=True), batch["det"], batch["valid"]["det"])
    assert loss.dim() == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("scale", [(1.0, 1.0), (1.2, 1.6)], ids=["flip", "flip+crop"])
def test_flip_and_scale_crop_move_boxes_like_the_segmentation(scale):
    """Under the joint transform a lone object's box still bounds its seg pixels (tightly without a crop).

    A crop clips the box to the crop, which need not be tight around the object's part inside it.
    """
    meta = _generate(40, 48, seed=2, max_objects=1, return_meta=True)
    transform = JointTransform(SPECS, Augment(scale=scale, hflip=True), [0.0] * 3, [1.0] * 3)
    checked = 0
    for i in range(40):
        item = {
            "image": torch.from_numpy(meta["image"][i]),
            "seg": torch.from_numpy(meta["seg"][i]),
            "det": torch.from_numpy(meta["det"][i]),
        }
        out = transform(item, torch.Generator().manual_seed(i))
        rows = out["det"][out["det"][:, 4] >= 0]
        ys, xs = torch.nonzero(out["seg"] > 0, as_tuple=True)
        if len(rows) == 0:
            continue
        assert len(rows) == 1 and int(rows[0, 4]) == int(out["seg"][ys[0], xs[0]]) - 1
        x1, y1, x2, y2 = rows[0, :4].tolist()
        seg_box = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
        slack = 1.5  # nearest resampling of the seg map: within a pixel
        assert x1 - slack <= seg_box[0] and y1 - slack <= seg_box[1]
        assert seg_box[2] <= x2 + slack and seg_box[3] <= y2 + slack
        if scale == (1.0, 1.0):
            assert rows[0, :4].tolist() == [float(v) for v in seg_box]
        checked += 1
    assert checked >= 30


def test_transform_label_keeps_drops_and_flips_by_the_documented_rule():
    target = torch.tensor([[0.0, 0.0, 10.0, 10.0, 1.0], [20.0, 4.0, 24.0, 8.0, 2.0], [0.0, 0.0, 0.0, 0.0, -1.0]])
    flipped = DetectionTask.transform_label(SPECS["det"], target, Geometry(size=(32, 32), flip=True))
    assert flipped.tolist() == [[22.0, 0.0, 32.0, 10.0, 1.0], [8.0, 4.0, 12.0, 8.0, 2.0]]
    # crop rows/cols 4..19 (16 px) back to 32 px: box 0 keeps 36 % (kept, clipped), box 1 is outside (dropped)
    zoomed = DetectionTask.transform_label(SPECS["det"], target, Geometry(size=(32, 32), box=(4, 4, 16, 16), zoom=2))
    assert zoomed.tolist() == [[0.0, 0.0, 12.0, 12.0, 1.0]]


def test_label_from_boxes_checks_size_extent_and_class():
    spec = SPECS["det"]
    ok = DetectionTask.label_from_boxes(spec, np.array([[1, 2, 3, 4]]), np.array([3]), (10, 10), ["f.json: a 1"])
    assert ok.tolist() == [[1.0, 2.0, 4.0, 6.0, 3.0]]
    cases = [
        ([[1, 2, 0, 4]], [0], "non-positive size"),
        ([[8, 2, 3, 4]], [0], "outside the 10x10 image"),
        ([[1, 2, 3, 4]], [4], "class 4 is not a class"),
    ]
    for box, label, message in cases:
        with pytest.raises(DataFileError, match=message) as info:
            DetectionTask.label_from_boxes(spec, np.array(box), np.array(label), (10, 10), ["f.json: annotation 7"])
        assert str(info.value).startswith("f.json: annotation 7") and "\n" not in str(info.value)


class _Perfect(torch.nn.Module):
    """Returns the raw head output that encodes the batch's ground truth (set before each call)."""

    def __init__(self) -> None:
        super().__init__()
        self.raw = torch.zeros(0)

    def forward(self, images):
        return {"det": self.raw}


def test_evaluation_decodes_through_the_task_and_scores_perfect_output_one():
    targets = [
        {"boxes": torch.tensor([[3.0, 4.0, 20.0, 30.0], [30.0, 33.0, 61.0, 50.0]]), "labels": torch.tensor([1, 3])},
        {"boxes": torch.tensor([[10.0, 11.0, 27.0, 22.0]]), "labels": torch.tensor([0])},
    ]
    packed = pack_boxes(targets)
    grid = grid_size((64, 64))
    box_t, weight = encode_regression(packed, grid)
    box_t = torch.where(weight[..., None] > 0, box_t, torch.tensor([0.0, 0.0, 4.0, 4.0]))
    logits = torch.logit(encode_targets(packed, K, grid).clamp(1e-6, 1 - 1e-6))
    model = _Perfect()
    model.raw = torch.cat([logits, cell_regression(box_t)], dim=1)
    batch = {"image": torch.zeros(2, 3, 64, 64), "det": packed}
    result = evaluate(model, [batch], [_task()], torch.device("cpu"))
    assert result["det"]["map"] == pytest.approx(1.0) and result["det"]["map_50"] == pytest.approx(1.0)
    model.raw = torch.cat([torch.full_like(logits, -9.0), cell_regression(box_t)], dim=1)  # nothing scores
    assert evaluate(model, [batch], [_task()], torch.device("cpu"))["det"]["map_50"] == 0.0


def test_predict_and_pictures_draw_named_boxes():
    task = _task(class_names=["circle", "square", "triangle", "star"], head_channels=16)
    head = task.build_head([8, 16])  # a list of per-stage feature maps is fused
    raw = head([torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8)], (64, 64))
    assert raw.shape == (2, K + 4, 16, 16)
    dets = task.predict(raw)
    assert dets.shape[0] == 2 and dets.shape[2] == 6
    assert task.build_head(8)(torch.randn(1, 8, 8, 8), (32, 32)).shape == (1, K + 4, 8, 8)
    image = torch.rand(3, 32, 32)
    gt, _ = task.draw_on_image(image, torch.tensor([[2.0, 3.0, 20.0, 30.0, 1.0], [0.0, 0.0, 0.0, 0.0, -1.0]]))
    plain, _ = task.draw_on_image(image, torch.zeros(0, 5))
    assert gt.dtype == np.uint8 and gt.shape[2] == 3 and gt.shape == plain.shape
    assert (gt != plain).any()  # the box and its name were drawn
    low = torch.tensor([[2.0, 3.0, 20.0, 30.0, 1.0, 0.1]])  # under the picture score: not drawn
    assert (task.draw_on_image(image, low)[0] == plain).all()
