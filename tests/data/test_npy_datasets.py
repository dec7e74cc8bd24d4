"""NYUv2 and Cityscapes in the preprocessed .npy layout: items match the files, checks name the bad file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import build, compose_cfg
from data_layouts import write_cityscapes, write_nyuv2

from mtl_cli.engine.build import build_tasks
from mtl_cli.errors import UserError

NYU = ["data=nyuv2", "task=seg+depth+normals"]
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


@pytest.fixture
def nyu(tmp_path: Path) -> Path:
    return write_nyuv2(tmp_path / "nyuv2")


def test_nyuv2_items_hold_the_files_contents(nyu):
    train, val = build(*NYU, f"data.root={nyu}")
    assert (len(train), len(val)) == (4, 3)
    item = train[2]
    assert set(item) == {"image", "seg", "depth", "normals"}
    files = {f: np.load(nyu / "train" / f / "2.npy") for f in ("image", "label", "depth", "normal")}
    assert files["image"].dtype == np.float64  # the release's dtype, read as float32
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 24, 32)
    assert torch.allclose(
        item["image"] * STD + MEAN, torch.from_numpy(files["image"]).permute(2, 0, 1).float(), atol=1e-6
    )
    assert item["seg"].dtype == torch.int64 and item["seg"].shape == (24, 32)
    assert torch.equal(item["seg"], torch.from_numpy(files["label"]).long())
    assert (item["seg"] == -1).any()
    assert item["depth"].dtype == torch.float32 and item["depth"].shape == (1, 24, 32)
    assert torch.allclose(item["depth"][0], torch.from_numpy(files["depth"][..., 0]).float())
    assert (item["depth"] == 0).any()
    normals = item["normals"]
    assert normals.dtype == torch.float32 and normals.shape == (3, 24, 32)
    norm = normals.norm(dim=0)
    assert torch.equal(norm == 0, item["depth"][0] == 0)  # the fixture's invalid block
    assert torch.allclose(norm[norm > 0], torch.ones(int((norm > 0).sum())), atol=1e-5)


def test_nyuv2_task_subset_sample_limit_and_resize(nyu):
    train, _ = build("data=nyuv2", "task=depth", f"data.root={nyu}", "data.num_train=2", "data.resize=[12,16]")
    assert len(train) == 2
    item = train[0]
    assert set(item) == {"image", "depth"} and item["depth"].shape == (1, 12, 16)
    with pytest.raises(UserError, match=r"asked for 9 samples but .*train holds 4"):
        build(*NYU, f"data.root={nyu}", "data.num_train=9")


def test_nyuv2_training_items_are_augmented_with_depth_scaled(nyu):
    train, val = build(*NYU, f"data.root={nyu}", "data.augment.scale=[2.0,2.0]")
    plain = val.base[0]
    assert train.augment and not val.augment
    zoomed = train[(0, 5)]
    valid = zoomed["depth"] > 0
    # every zoomed depth is a value of the file halved
    assert set((zoomed["depth"][valid] * 2).tolist()) <= set(
        train.base[0]["depth"][train.base[0]["depth"] > 0].tolist()
    )
    assert plain["depth"].shape == zoomed["depth"].shape


def test_cityscapes_label_sets_and_inverse_depth(tmp_path):
    root = write_cityscapes(tmp_path / "cs")
    train, _ = build("data=cityscapes", "task=seg+depth", f"data.root={root}")
    seg = train[0]["seg"]
    assert torch.equal(seg, torch.from_numpy(np.load(root / "train" / "label_7" / "0.npy")).long())
    cfg = compose_cfg("data=cityscapes", "task=seg+depth", "data.label_set=19", f"data.root={root}")
    assert build_tasks(cfg)[0].num_classes == 19
    train, _ = build("data=cityscapes", "task=seg+depth", "data.label_set=19", f"data.root={root}")
    assert torch.equal(train[1]["seg"], torch.from_numpy(np.load(root / "train" / "label_19" / "1.npy")).long())
    with pytest.raises(UserError, match="label_set=5"):
        build("data=cityscapes", "task=seg", "data.label_set=5", f"data.root={root}")
    train, _ = build("data=cityscapes", "task=depth", f"data.root={root}", "data.augment.scale=[2.0,2.0]")
    zoomed, raw = train[(1, 3)]["depth"], train.base[1]["depth"]
    assert zoomed[zoomed > 0].max() > raw.max()  # inverse depth grows when zooming in
    assert set((zoomed[zoomed > 0] / 2).tolist()) <= set(raw[raw > 0].tolist())


def _save(path: Path, array: np.ndarray) -> None:
    np.save(path, array)


CORRUPTIONS = {
    "missing split": (lambda r: shutil.rmtree(r / "val"), r"missing folder .*nyuv2/val \(the 'val' split\)"),
    "missing task folder": (
        lambda r: shutil.rmtree(r / "train" / "normal"),
        r"missing folder .*train/normal \(labels of task normals\)",
    ),
    "gap in indices": (
        lambda r: [(r / "train" / f / "1.npy").unlink() for f in ("image", "label", "depth", "normal")],
        r"non-contiguous indices in .*train/\w+: 1\.npy is missing but 3\.npy exists",
    ),
    "file count differs": (
        lambda r: (r / "train" / "depth" / "3.npy").unlink(),
        r"train/depth holds 3 files but .*train/image holds 4",
    ),
    "stray name": (lambda r: _save(r / "train" / "label" / "01.npy", np.zeros(1)), r"unexpected file .*label/01\.npy"),
    "wrong label shape": (
        lambda r: _save(r / "train" / "label" / "0.npy", np.zeros((24, 32, 2))),
        r"train/label/0\.npy has shape \(24, 32, 2\); expected \(24, 32\)",
    ),
    "wrong image dtype": (
        lambda r: _save(r / "train" / "image" / "0.npy", np.zeros((24, 32, 3), np.uint8)),
        r"train/image/0\.npy has dtype uint8; expected float",
    ),
    "image not in [0, 1]": (
        lambda r: _save(r / "val" / "image" / "0.npy", np.full((24, 32, 3), 200.0)),
        r"val/image/0\.npy has values in \[200, 200\]; expected image values in \[0, 1\]",
    ),
    "label out of range": (
        lambda r: _save(r / "train" / "label" / "3.npy", np.full((24, 32), 13.0)),
        r"train/label/3\.npy has label value 13 outside the classes; expected 0\.\.12 or -1 \(ignore\)",
    ),
    "non-integer label": (
        lambda r: _save(r / "train" / "label" / "0.npy", np.full((24, 32), 0.5)),
        r"label/0\.npy holds non-integer labels",
    ),
    "normal of another size": (
        lambda r: _save(r / "train" / "normal" / "0.npy", np.zeros((12, 32, 3))),
        r"normal/0\.npy has shape \(12, 32, 3\); expected \(24, 32, 3\)",
    ),
    "negative depth": (
        lambda r: _save(r / "train" / "depth" / "0.npy", -np.ones((24, 32, 1))),
        r"depth/0\.npy has negative or non-finite depth",
    ),
    "corrupt file": (
        lambda r: (r / "train" / "depth" / "0.npy").write_bytes(b"not an array"),
        r"cannot read .*depth/0\.npy .*expected a NumPy \.npy array",
    ),
    "pickled object array": (
        lambda r: np.save(r / "train" / "depth" / "0.npy", np.array([{}], dtype=object), allow_pickle=True),
        r"cannot read .*depth/0\.npy",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_bad_nyuv2_files_are_reported_by_name_up_front(nyu, case):
    corrupt, message = CORRUPTIONS[case]
    corrupt(nyu)
    with pytest.raises(UserError, match=message):
        build(*NYU, f"data.root={nyu}")


def test_missing_or_wrong_root(tmp_path):
    with pytest.raises(UserError, match=r"data=nyuv2 needs data.root=<folder>; the folder should hold train/ and val/"):
        build(*NYU)
    with pytest.raises(UserError, match=r"data.root=.*nowhere is not a folder"):
        build(*NYU, f"data.root={tmp_path / 'nowhere'}")


def test_files_beyond_the_scan_are_checked_when_loaded(nyu):
    _save(nyu / "train" / "label" / "2.npy", np.full((24, 32), 40.0))
    train, _ = build(*NYU, f"data.root={nyu}", "data.check_files=1")  # reads 0.npy and the last, 3.npy
    train[1]
    with pytest.raises(UserError, match=r"label/2\.npy has label value 40"):
        train[2]
