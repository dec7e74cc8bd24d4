"""mtl-train on every dataset's fixture: trains end to end; bad data is one line on stderr, exit 2.

All invocations go through the console entry point, in one subprocess (see run_train_batch).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from data_helpers import run_train_batch
from data_layouts import write_celeba, write_cityscapes, write_folder, write_mnist, write_nyuv2

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TINY = [
    "trainer.epochs=1",
    "trainer.max_steps=3",
    "trainer.batch_size=2",
    "backbone.width=8",
    "trainer.vis_images=2",
    "trainer.progress=false",
]
NYU = ["data=nyuv2", "task=seg+depth+normals"]
FOLDER_CLASSES = ["data.tasks.cls.num_classes=3", "data.tasks.seg.num_classes=4", "data.tasks.multilabel.num_classes=3"]


def _nyu(root: Path, corrupt=None) -> Path:
    write_nyuv2(root)
    if corrupt:
        corrupt(root)
    return root


# case -> (build the data under a folder and return the mtl-train arguments, expected stderr regex or None)
def _cases(base: Path) -> dict[str, tuple[list[str], str | None]]:
    nyu = _nyu(base / "nyu")
    cases: dict[str, tuple[list[str], str | None]] = {
        "nyuv2": (
            [
                *NYU,
                f"data.root={nyu}",
                "data.augment.scale=[1.0,1.5]",
                "data.augment.hflip=true",
                "trainer.num_workers=2",
            ],
            None,
        ),
        "cityscapes": (
            ["data=cityscapes", "task=seg+depth", "data.label_set=19", f"data.root={write_cityscapes(base / 'cs')}"],
            None,
        ),
        "celeba": (
            [
                "data=celeba",
                "task=attribute_groups",
                f"data.root={write_celeba(base / 'celeba')}",
                "data.resize=[32,32]",
            ],
            None,
        ),
        "multimnist": (["data=multimnist", "task=left+mask+right", "data.num_train=16", "data.num_val=8"], None),
        "multimnist_mnist": (
            [
                "data=multimnist",
                "task=left+right",
                "data.num_train=16",
                "data.num_val=8",
                "data.source=mnist",
                f"data.root={write_mnist(base / 'mnist')}",
            ],
            None,
        ),
        "folder_with_missing_labels": (
            [
                "data=folder",
                "task=cls+seg+depth+normals+edges+multilabel",
                *FOLDER_CLASSES,
                f"data.root={write_folder(base / 'folder', unlabelled={'seg': {1, 2}, 'cls': {0}, 'edges': {3}})}",
            ],
            None,
        ),
        "experiment": (
            ["+experiment=nyuv2_resnet50", f"data.root={nyu}", "backbone=small_cnn", "trainer.num_workers=0"],
            None,
        ),
        # ---- bad input: one line naming the file and what was expected
        "missing root": (NYU, r"data=nyuv2 needs data\.root=<folder>; the folder should hold train/ and val/"),
        "missing split": (
            ["data=cityscapes", "task=seg+depth", f"data.root={_cs_without_val(base / 'cs2')}"],
            r"missing folder \S+/cs2/val \(the 'val' split\)",
        ),
        "missing task folder": (
            [*NYU, f"data.root={_nyu(base / 'n1', lambda r: shutil.rmtree(r / 'train/normal'))}"],
            r"missing folder \S+/n1/train/normal \(labels of task normals\)",
        ),
        "gap in indices": (
            [*NYU, f"data.root={_nyu(base / 'n2', _gap)}"],
            r"non-contiguous indices in \S+/n2/train/\w+: 1\.npy is missing but 3\.npy exists",
        ),
        "wrong shape": (
            [*NYU, f"data.root={_nyu(base / 'n3', _save('train/label/0.npy', np.zeros((24, 32, 2))))}"],
            r"\S+/n3/train/label/0\.npy has shape \(24, 32, 2\); expected \(24, 32\)",
        ),
        "wrong dtype": (
            [*NYU, f"data.root={_nyu(base / 'n4', _save('val/depth/0.npy', np.ones((24, 32, 1), np.int32)))}"],
            r"\S+/n4/val/depth/0\.npy has dtype int32; expected float",
        ),
        "label out of range": (
            [*NYU, f"data.root={_nyu(base / 'n5', _save('train/label/3.npy', np.full((24, 32), 13.0)))}"],
            r"\S+/n5/train/label/3\.npy has label value 13 outside the classes; expected 0\.\.12 or -1",
        ),
        "corrupt image": (
            ["data=celeba", "task=attributes", f"data.root={_broken_celeba(base / 'c2')}"],
            r"cannot read image \S+/000001\.jpg .*expected a readable PNG/JPEG image",
        ),
        "mnist missing": (
            ["data=multimnist", "task=left", "data.source=mnist", f"data.root={base / 'empty'}"],
            r"MNIST not found under \S+/empty/MNIST/raw; set data\.download=true",
        ),
        "folder class out of range": (
            ["data=folder", "task=cls", "data.tasks.cls.num_classes=2", f"data.root={write_folder(base / 'f2')}"],
            r"\S+/f2/train/cls\.csv line \d+ has value\(s\) 2; expected a class index 0\.\.1",
        ),
        "bad file met by a worker": (
            [
                *NYU,
                f"data.root={_nyu(base / 'n6', _save('train/label/2.npy', np.full((24, 32), 40.0)))}",
                "data.check_files=1",
                "trainer.num_workers=2",
                "trainer.batch_size=4",
            ],
            r"\S+/n6/train/label/2\.npy has label value 40 outside the classes",
        ),
    }
    return cases


def _cs_without_val(root: Path) -> Path:
    write_cityscapes(root)
    shutil.rmtree(root / "val")
    return root


def _gap(root: Path) -> None:
    for folder in ("image", "label", "depth", "normal"):
        (root / "train" / folder / "1.npy").unlink()


def _save(relative: str, array: np.ndarray):
    return lambda root: np.save(root / relative, array)


def _broken_celeba(root: Path) -> Path:
    write_celeba(root)
    (root / "celeba" / "img_align_celeba" / "000001.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> tuple[Path, dict, dict]:
    base = tmp_path_factory.mktemp("cli_data")
    cases = _cases(base)
    args = {name: [*argv, *TINY, f"hydra.run.dir={_run_dir(base, name)}"] for name, (argv, _) in cases.items()}
    return base, cases, run_train_batch(args, base)


def _run_dir(base: Path, name: str) -> Path:
    return base / "runs" / re.sub(r"\W+", "_", name)


TRAINING = [
    "nyuv2",
    "cityscapes",
    "celeba",
    "multimnist",
    "multimnist_mnist",
    "folder_with_missing_labels",
    "experiment",
]
ERRORS = [
    "missing root",
    "missing split",
    "missing task folder",
    "gap in indices",
    "wrong shape",
    "wrong dtype",
    "label out of range",
    "corrupt image",
    "mnist missing",
    "folder class out of range",
    "bad file met by a worker",
]


@pytest.mark.parametrize("name", TRAINING)
def test_trains_a_few_steps_end_to_end(batch, name):
    base, cases, results = batch
    assert results[name]["rc"] == 0, results[name]["stderr"]
    summary = json.loads((_run_dir(base, name) / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] >= 1
    for task, metrics in summary["metrics"].items():
        assert all(math.isfinite(v) for v in metrics.values()), (task, metrics)
    assert (_run_dir(base, name) / "checkpoints" / "last.pt").is_file()


def test_dataset_task_sets_reach_the_summary(batch):
    base, _, _ = batch
    tasks = {n: json.loads((_run_dir(base, n) / "summary.json").read_text())["tasks"] for n in TRAINING}
    assert tasks["nyuv2"] == tasks["experiment"] == ["seg", "depth", "normals"]
    assert tasks["multimnist"] == ["left", "mask", "right"]
    assert len(tasks["celeba"]) == 9
    assert tasks["folder_with_missing_labels"] == ["cls", "seg", "depth", "normals", "edges", "multilabel"]


@pytest.mark.parametrize("name", ERRORS)
def test_bad_data_is_one_line_and_exit_2(batch, name):
    base, cases, results = batch
    result = results[name]
    lines = result["stderr"].strip().splitlines()
    assert result["rc"] == 2 and len(lines) == 1, result
    assert lines[0].startswith("mtl-train: error: ")
    assert re.search(cases[name][1], lines[0]), lines[0]
    if name != "bad file met by a worker":  # everything else is found before training starts
        assert not (_run_dir(base, name) / "checkpoints").exists()
        assert not (_run_dir(base, name) / "metrics.csv").exists()
