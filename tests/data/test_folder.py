"""The user's own folder: every task kind, per-sample missing labels skipped by loss and metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import build, compose_cfg
from data_layouts import write_folder
from PIL import Image

from mtl_cli.data import MultiTaskCollate
from mtl_cli.engine.build import build_tasks
from mtl_cli.errors import UserError

ALL = "task=cls+seg+depth+normals+edges+multilabel"
CLASSES = ["data.tasks.cls.num_classes=3", "data.tasks.seg.num_classes=4", "data.tasks.multilabel.num_classes=3"]
UNLABELLED = {"seg": {1}, "cls": {2}, "edges": {1, 3}, "multilabel": {4}, "depth": {0}}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "mine", unlabelled=UNLABELLED)


def overrides(root: Path, *extra: str) -> list[str]:
    return ["data=folder", ALL, f"data.root={root}", *CLASSES, *extra]


def test_items_hold_the_files_and_valid_flags(folder):
    train, val = build(*overrides(folder))
    assert (len(train), len(val)) == (6, 4)
    item = train[0]
    assert set(item) == {"image", "cls", "seg", "depth", "normals", "edges", "multilabel", "valid"}
    assert item["image"].shape == (3, 20, 24)
    seg = np.array(Image.open(folder / "train" / "seg" / "img_000.png"))
    assert torch.equal(item["seg"], torch.from_numpy(seg).long()) and (item["seg"] == 255).any()
    assert torch.equal(
        item["normals"], torch.from_numpy(np.load(folder / "train/normals/img_000.npy")).permute(2, 0, 1)
    )
    edges = np.array(Image.open(folder / "train" / "edges" / "img_000.png")) > 0
    assert torch.equal(item["edges"][0], torch.from_numpy(edges).float())
    cls_rows = dict(line.split(",") for line in (folder / "train" / "cls.csv").read_text().split()[1:])
    assert item["cls"].item() == int(cls_rows["img_000.png"])
    assert item["multilabel"].shape == (3,) and item["multilabel"].dtype == torch.float32
    for index in range(6):
        flags = train[index]["valid"]
        assert flags == {t: index not in UNLABELLED.get(t, set()) for t in flags}


def test_missing_labels_are_placeholders_that_count_for_nothing(folder):
    train, _ = build(*overrides(folder))
    assert (train[1]["seg"] == 255).all() and train[2]["cls"].item() == -1
    assert (train[0]["depth"] == 0).all() and (train[4]["multilabel"] == -1).all()


def test_an_unlabelled_task_is_skipped_while_the_others_learn(folder):
    cfg = compose_cfg(*overrides(folder))
    tasks = {t.name: t for t in build_tasks(cfg)}
    train, _ = build(*overrides(folder))
    batch = MultiTaskCollate(list(tasks.values()))([train[i] for i in range(4)])
    valid = batch["valid"]
    assert valid["edges"].tolist() == [True, False, True, False] and valid["seg"].tolist() == [True, False, True, True]
    torch.manual_seed(0)
    preds = {
        "seg": torch.randn(4, 4, 20, 24, requires_grad=True),
        "edges": torch.randn(4, 1, 20, 24, requires_grad=True),
        "cls": torch.randn(4, 3, requires_grad=True),
    }
    losses = {n: tasks[n].loss(preds[n], batch[n], valid[n]) for n in preds}
    # the loss of a task equals its loss over the labelled samples alone
    for name in ("seg", "edges"):
        keep = valid[name]
        alone = tasks[name].loss(preds[name][keep], batch[name][keep])
        assert torch.allclose(losses[name], alone), name
    # edge targets of an unlabelled image are zeros that would count as "no edge" without the mask
    assert not torch.allclose(tasks["edges"].loss(preds["edges"], batch["edges"]), losses["edges"])
    sum(losses.values()).backward()
    assert (preds["seg"].grad[1] == 0).all() and (preds["edges"].grad[1] == 0).all()
    assert (preds["cls"].grad[1] != 0).any() and (preds["seg"].grad[0] != 0).any()  # image 1 still trains cls
    for name in ("seg", "edges", "cls"):
        keep = valid[name]
        skipped, alone = tasks[name].metrics(), tasks[name].metrics()
        skipped.update(preds[name].detach(), batch[name], valid[name])
        alone.update(preds[name].detach()[keep], batch[name][keep])
        assert skipped.compute() == alone.compute(), name


def test_images_of_other_sizes_need_resize(folder):
    Image.new("RGB", (30, 20)).save(folder / "train" / "images" / "img_003.png")
    train, _ = build(*overrides(folder), "data.check_files=1")
    with pytest.raises(UserError, match=r"img_003\.png is 20x30 but img_000\.png is 20x24; set data.resize"):
        train[3]


def test_resize_brings_images_and_labels_to_one_size(folder):
    train, _ = build(*overrides(folder), "data.resize=[16,16]")
    item = train[0]
    assert item["image"].shape == (3, 16, 16) and item["seg"].shape == (16, 16) and item["normals"].shape == (3, 16, 16)


def _png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


CORRUPTIONS = {
    "missing task folder": (lambda r: __import__("shutil").rmtree(r / "val" / "depth"), r"missing folder .*val/depth"),
    "missing csv": (lambda r: (r / "train" / "cls.csv").unlink(), r"missing file .*train/cls\.csv"),
    "class out of range": (
        lambda r: (r / "train" / "cls.csv").write_text("image,label\nimg_000.png,7\n"),
        r"cls\.csv line 2 has value\(s\) 7; expected a class index 0\.\.2",
    ),
    "csv names no image": (
        lambda r: (r / "train" / "cls.csv").write_text("image,label\nimg_999.png,1\n"),
        r"cls\.csv line 2 names img_999\.png, which is not a file in images/",
    ),
    "csv not utf-8": (  # issue 12.4
        lambda r: (r / "train" / "cls.csv").write_bytes(b"image,label\nimg_000.png,1\nimg_\xff\xfe.png,0\n"),
        r"cls\.csv \(labels of task cls\) is not UTF-8 text: byte 30 \(line 3\) cannot be decoded",
    ),
    "multilabel width": (
        lambda r: (r / "train" / "multilabel.csv").write_text("image,a,b\nimg_000.png,1,0\n"),
        r"multilabel\.csv has 2 label columns; task multilabel expects 3",
    ),
    "orphan label": (
        lambda r: _png(r / "train" / "seg" / "other.png", np.zeros((20, 24), np.uint8)),
        r"seg/other\.png has no image 'other\.\*'",
    ),
    "seg value out of range": (
        lambda r: _png(r / "train" / "seg" / "img_000.png", np.full((20, 24), 7, np.uint8)),
        r"seg/img_000\.png has label value 7 outside the classes; expected 0\.\.3 or 255 \(ignore\)",
    ),
    "rgb class map": (
        lambda r: _png(r / "train" / "seg" / "img_000.png", np.zeros((20, 24, 3), np.uint8)),
        r"seg/img_000\.png is a RGB image; expected a single-channel",
    ),
    "label of another size": (
        lambda r: np.save(r / "train" / "normals" / "img_000.npy", np.zeros((10, 24, 3), np.float32)),
        r"normals/img_000\.npy has shape \(10, 24, 3\); expected \(20, 24, 3\)",
    ),
    "corrupt image": (
        lambda r: (r / "train" / "images" / "img_000.png").write_bytes(b"\x89PNG broken"),
        r"cannot read image .*img_000\.png",
    ),
    "no labels at all": (
        lambda r: [p.unlink() for p in (r / "train" / "edges").iterdir()],
        r"no image of .*train has a label for task edges",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_bad_folder_data_is_reported_by_name(folder, case):
    corrupt, message = CORRUPTIONS[case]
    corrupt(folder)
    with pytest.raises(UserError, match=message):
        build(*overrides(folder))


def test_class_counts_must_be_given(folder):
    with pytest.raises(UserError, match=r"task 'seg' needs num_classes"):
        build("data=folder", "task=seg", f"data.root={folder}")
