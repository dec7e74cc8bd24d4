"""``data=coco``: images plus a COCO instances JSON (and optional seg masks), partial labels, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from mtl_cli.data import build_datasets
from mtl_cli.data.checks import DataFileError
from mtl_cli.errors import UserError

H, W = 24, 32


def _instances(n_images: int) -> dict:
    """The exact COCO instances layout: info, images, annotations (xywh bbox, area, iscrowd), categories."""
    images = [{"id": 10 + i, "file_name": f"im{i}.png", "width": W, "height": H} for i in range(n_images)]
    boxes = {0: [([2, 3, 10, 8], 7), ([20, 10, 12, 14], 3)], 1: [([0, 0, 5.5, 6.5], 5)], 2: []}
    annotations, ann_id = [], 1
    for i, entries in boxes.items():
        for bbox, category in entries:
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": 10 + i,
                    "category_id": category,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                    "segmentation": [],
                }
            )
            ann_id += 1
    annotations.append(
        {
            "id": 99,
            "image_id": 11,
            "category_id": 3,
            "bbox": [1, 1, 4, 4],
            "area": 16,
            "iscrowd": 1,
            "segmentation": {"counts": [], "size": [H, W]},
        }
    )
    categories = [
        {"id": 3, "name": "cup", "supercategory": "x"},
        {"id": 5, "name": "pen", "supercategory": "x"},
        {"id": 7, "name": "box", "supercategory": "x"},
    ]
    return {
        "info": {"description": "fixture"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def _write(root: Path, n_images: int = 4, seg_for: tuple[int, ...] = (0, 2)) -> Path:
    """Splits train/val: ``n_images`` PNGs, of which the JSON lists the first three, seg masks for some."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "seg").mkdir()
        for i in range(n_images):
            Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
                root / split / "images" / f"im{i}.png"
            )
        for i in seg_for:
            Image.fromarray(rng.integers(0, 3, (H, W)).astype(np.uint8)).save(root / split / "seg" / f"im{i}.png")
        (root / split / "instances.json").write_text(json.dumps(_instances(3)))
    return root


def _cfg(root: Path, **extra):
    cfg = OmegaConf.load(Path(__file__).parents[2] / "configs" / "data" / "coco.yaml")
    cfg.root = str(root)
    cfg.tasks.det.num_classes = 3
    cfg.tasks.seg.num_classes = 3
    cfg.check_files = 4
    cfg.augment = {
        "scale": [1.0, 1.0],
        "hflip": False,
        "brightness": 0.0,
        "contrast": 0.0,
        "saturation": 0.0,
        "hue": 0.0,
    }
    return OmegaConf.merge(cfg, extra)


def test_boxes_classes_and_partial_labels(tmp_path):
    train, val = build_datasets(_cfg(_write(tmp_path)), ["det", "seg"])
    assert len(train) == 4 and len(val) == 4
    items = [train[i] for i in range(4)]
    # categories 3, 5, 7 -> classes 0, 1, 2; xywh -> xyxy; the crowd box of image 1 is left out
    assert items[0]["det"].tolist() == [[2.0, 3.0, 12.0, 11.0, 2.0], [20.0, 10.0, 32.0, 24.0, 0.0]]
    assert items[1]["det"].tolist() == [[0.0, 0.0, 5.5, 6.5, 1.0]]
    assert items[2]["det"].shape == (0, 5) and items[2]["valid"]["det"]  # listed, no boxes: a negative
    assert items[3]["det"].shape == (0, 5) and not items[3]["valid"]["det"]  # not in the JSON: no label
    assert [it["valid"]["seg"] for it in items] == [True, False, True, False]
    assert items[0]["seg"].shape == (H, W) and items[0]["seg"].dtype == torch.int64


def test_resize_moves_the_boxes(tmp_path):
    train, _ = build_datasets(_cfg(_write(tmp_path), resize=[48, 64]), ["det"])
    assert train[0]["image"].shape == (3, 48, 64)
    assert train[0]["det"].tolist() == [[4.0, 6.0, 24.0, 22.0, 2.0], [40.0, 20.0, 64.0, 48.0, 0.0]]


def _break(root: Path, change) -> None:
    path = root / "train" / "instances.json"
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda c: c["images"].append({"id": 50, "file_name": "gone.png", "width": W, "height": H}),
            r"instances\.json: image 50 is gone\.png, which is missing from .*images",
        ),
        (
            lambda c: c["annotations"][0].update(bbox=[25, 3, 10, 8]),
            r"instances\.json: annotation 1 \(image im0\.png\): box \[x=25, y=3, w=10, h=8\] reaches outside the 32x24 image",
        ),
        (
            lambda c: c["annotations"][1].update(bbox=[2, 3, 0, 8]),
            r"instances\.json: annotation 2 \(image im0\.png\): box .* has a non-positive size",
        ),
        (
            lambda c: c["annotations"][2].update(category_id=4),
            r"instances\.json: annotation 3 has category_id 4, which is not in \"categories\" \(ids 3, 5, 7\)",
        ),
        (
            lambda c: c["annotations"][0].update(bbox=[1, 2, 3]),
            r"instances\.json: annotation 1 has bbox \[1, 2, 3\]; expected \[x, y, width, height\]",
        ),
        (lambda c: c.pop("categories"), r"instances\.json is not COCO instances JSON: the file has no 'categories'"),
    ],
    ids=["missing-image", "box-outside", "non-positive", "unknown-category", "bad-bbox", "no-categories"],
)
def test_bad_files_get_one_line_naming_the_file(tmp_path, change, message):
    root = _write(tmp_path)
    _break(root, change)
    with pytest.raises(DataFileError, match=message) as info:
        build_datasets(_cfg(root), ["det"])
    assert "\n" not in str(info.value)


def test_malformed_json_and_class_count(tmp_path):
    root = _write(tmp_path)
    path = root / "train" / "instances.json"
    path.write_text('{"images": [}')
    with pytest.raises(DataFileError, match=r"instances\.json is not valid JSON \(line 1, column 13"):
        build_datasets(_cfg(root), ["det"])
    path.write_text(json.dumps(_instances(3)))
    cfg = _cfg(root)
    cfg.tasks.det.num_classes = 5
    with pytest.raises(
        UserError, match=r"has 3 categories but task det has num_classes=5; set data\.tasks\.det\.num_classes=3"
    ):
        build_datasets(cfg, ["det"])
