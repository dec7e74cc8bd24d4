"""mtl-predict and mtl-export on ``det``: a known raw output gives its box in the original image's pixels."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from inference.helpers import write_checkpoint
from PIL import Image

from mtl_cli.inference.detection import boxes_to_image, detection_records
from mtl_cli.inference.export import sidecar
from mtl_cli.inference.loading import load_trained_model
from mtl_cli.inference.overview import save_overview
from mtl_cli.inference.writers import decode, output_files, write_prediction
from mtl_cli.tasks import build_task
from mtl_cli.tasks.detection.head import cell_regression

NAMES = ["circle", "square", "triangle", "star"]
INPUT = (32, 32)  # the model input: an 8 x 8 grid of stride 4
IMAGE = (64, 96)  # the original image (H, W): x scaled by 3, y by 2
BOX = [16.0, 8.0, 28.0, 20.0]  # in input pixels; centre (22, 14) lies in cell row 3, column 5
PEAK_LOGIT = 3.0


def _task():
    return build_task("det", {"kind": "det"}, {"num_classes": len(NAMES), "class_names": NAMES})


def _raw_with_one_peak(label: int = 2) -> torch.Tensor:
    """A raw output ``[K + 4, 8, 8]``: one heatmap peak of ``label`` at row 3, column 5, every cell encoding BOX."""
    raw = torch.full((len(NAMES) + 4, 8, 8), -12.0)
    raw[label, 3, 5] = PEAK_LOGIT
    raw[label, 3, 4] = 0.0  # a lower neighbour: not a peak, so not a second detection
    boxes = torch.tensor(BOX).expand(1, 8, 8, 4)
    raw[len(NAMES) :] = cell_regression(boxes)[0]
    return raw


def test_known_peak_decodes_to_its_box_in_the_original_image():
    rows = decode(_task(), _raw_with_one_peak(), INPUT, IMAGE)
    assert rows.shape == (1, 6)
    torch.testing.assert_close(rows[0, :4], torch.tensor([48.0, 16.0, 84.0, 40.0]), atol=1e-4, rtol=0)
    assert int(rows[0, 4]) == 2
    assert rows[0, 5].item() == pytest.approx(1 / (1 + math.exp(-PEAK_LOGIT)), abs=1e-6)
    same = decode(_task(), _raw_with_one_peak(), INPUT, INPUT)  # an image already of the input size
    torch.testing.assert_close(same[0, :4], torch.tensor(BOX), atol=1e-4, rtol=0)


def test_boxes_are_clipped_to_the_image_and_dropped_when_outside():
    rows = torch.tensor(
        [
            [-4.0, 2.0, 10.0, 40.0, 1.0, 0.9],  # reaches out left and below: clipped
            [30.0, 0.0, 34.0, 8.0, 0.0, 0.5],  # beyond a 30 px wide input: dropped
            [0.0, 0.0, 0.0, 0.0, -1.0, 0.0],  # padding row
        ]
    )
    out = boxes_to_image(rows, (32, 30), (64, 60))
    torch.testing.assert_close(out, torch.tensor([[0.0, 4.0, 20.0, 64.0, 1.0, 0.9]]))
    assert detection_records(out, None) == [{"box": [0.0, 4.0, 20.0, 64.0], "score": 0.9, "class": 1, "name": "1"}]


def test_prediction_writes_the_box_json_and_an_overlay_with_the_box(tmp_path):
    task = _task()
    image = torch.zeros(3, *IMAGE)
    rows = decode(task, _raw_with_one_peak(), INPUT, IMAGE)
    record = write_prediction(task, rows, tmp_path, "photo", NAMES, 5, image)
    assert output_files(task, "photo") == ["photo.det.json", "photo.det.png"]
    assert record == {"files": ["photo.det.json", "photo.det.png"], "boxes": 1}
    (box,) = json.loads((tmp_path / "photo.det.json").read_text())
    assert box["box"] == pytest.approx([48.0, 16.0, 84.0, 40.0], abs=1e-3)
    assert box["class"] == 2 and box["name"] == "triangle"
    assert box["score"] == pytest.approx(1 / (1 + math.exp(-PEAK_LOGIT)), abs=1e-5)
    overlay = np.asarray(Image.open(tmp_path / "photo.det.png").convert("RGB"))
    scale = 2  # a 96 px wide image is drawn upscaled to at least 128 px, as in val_predictions.png
    assert overlay.shape == (IMAGE[0] * scale, IMAGE[1] * scale, 3)
    green = np.array([0x4D, 0xAF, 0x4A])  # the palette colour of class 2
    middle = (16 + 40) // 2 * scale
    assert (overlay[middle, 48 * scale] == green).all() and (overlay[middle, 84 * scale] == green).all()
    assert (overlay[40 * scale, 60 * scale] == green).all()  # the bottom edge
    assert (overlay[middle, 20 * scale] == 0).all() and (overlay[middle, 66 * scale] == 0).all()
    assert (overlay[5 * scale] == 0).all()  # above the box and its name: untouched
    save_overview(tmp_path / "photo.overview.png", image, [task], {"det": rows}, {"det": record})
    assert Image.open(tmp_path / "photo.overview.png").size == (400, 224)  # two panels: input and boxes


def test_sidecar_says_how_to_decode_the_det_output(tmp_path):
    trained = load_trained_model(write_checkpoint(tmp_path / "model.pt", tasks=("seg", "det")))
    (det,) = [o for o in sidecar(trained, "onnx", tmp_path / "m.onnx", (32, 30))["outputs"] if o["kind"] == "det"]
    assert det["shape"] == "[N, 8, 8, 8]" and det["classes"] == NAMES
    decoding = det["decoding"]
    assert decoding["heatmap_channels"] == [0, 4] and decoding["box_channels"] == [4, 8]
    assert (decoding["score_thresh"], decoding["max_dets"], decoding["nms_iou"]) == (0.01, 100, 0.7)
    # Following the sidecar's recipe by hand at the peak cell gives the task's own box.
    raw, stride = _raw_with_one_peak().numpy(), decoding["stride"]
    dx, dy, log_w, log_h = raw[slice(*decoding["box_channels"]), 3, 5]
    cx, cy = (5 + 0.5 + dx) * stride, (3 + 0.5 + dy) * stride
    w, h = stride * np.exp(log_w), stride * np.exp(log_h)
    np.testing.assert_allclose([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], BOX, atol=1e-4)
