"""CelebA in torchvision's layout: splits, attribute targets (whole, groups, per attribute), bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import build, compose_cfg
from data_layouts import CELEBA_ATTRIBUTES, write_celeba

from mtl_cli.errors import UserError


@pytest.fixture
def celeba(tmp_path: Path) -> Path:
    return write_celeba(tmp_path / "data", n=10)


def _table(root: Path) -> dict[str, np.ndarray]:
    lines = (root / "celeba" / "list_attr_celeba.txt").read_text().splitlines()[2:]
    return {line.split()[0]: np.array([int(v) for v in line.split()[1:]]) for line in lines}


def test_splits_and_whole_attribute_task_match_the_annotation_files(celeba):
    train, val = build("data=celeba", "task=attributes", f"data.root={celeba}")
    assert (len(train), len(val)) == (6, 2)  # split ids cycle 0, 0, 0, 1, 2
    table = _table(celeba)
    assert train.base.files == ["000001.jpg", "000002.jpg", "000003.jpg", "000006.jpg", "000007.jpg", "000008.jpg"]
    assert val.base.files == ["000004.jpg", "000009.jpg"]
    for index, name in enumerate(train.base.files):
        item = train[index]
        assert set(item) == {"image", "attributes"}
        assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
        assert item["attributes"].dtype == torch.float32
        assert torch.equal(item["attributes"], torch.from_numpy((table[name] > 0).astype(np.float32)))


def test_attribute_groups_and_per_attribute_tasks(celeba):
    cfg = compose_cfg("data=celeba", "task=attribute_groups")
    groups = {name: list(cfg.data.tasks[name].attributes) for name in cfg.tasks}
    flat = [a for attrs in groups.values() for a in attrs]
    assert sorted(flat) == sorted(CELEBA_ATTRIBUTES) and len(flat) == 40  # a partition of the 40
    train, _ = build("data=celeba", "task=attribute_groups", f"data.root={celeba}")
    item, row = train[0], _table(celeba)["000001.jpg"]
    for name, attrs in groups.items():
        expected = [float(row[CELEBA_ATTRIBUTES.index(a)] > 0) for a in attrs]
        assert item[name].tolist() == expected, name
    train, _ = build("data=celeba", "task=per_attribute", f"data.root={celeba}")
    item = train[0]
    assert len(item) == 41 and item["five_o_clock_shadow"].shape == (1,)
    assert item["young"].item() == float(row[CELEBA_ATTRIBUTES.index("Young")] > 0)


def test_root_may_be_the_celeba_folder_itself_and_native_size(celeba):
    train, _ = build("data=celeba", "task=attributes", f"data.root={celeba / 'celeba'}", "data.resize=null")
    assert train[0]["image"].shape == (3, 218, 178)


def test_own_attribute_group(celeba):
    train, _ = build(
        "data=celeba",
        "task=attributes",
        f"data.root={celeba}",
        "data.tasks.attributes.attributes=[Smiling,Male]",
        "data.tasks.attributes.num_classes=2",
    )
    row = _table(celeba)["000001.jpg"]
    assert train[0]["attributes"].tolist() == [float(row[31] > 0), float(row[20] > 0)]


def _rewrite(path: Path, old: str, new: str, count: int = 1) -> None:
    path.write_text(path.read_text().replace(old, new, count))


CORRUPTIONS = {
    "corrupt jpeg": (
        lambda r: (r / "celeba" / "img_align_celeba" / "000002.jpg").write_bytes(b"\xff\xd8garbage"),
        r"cannot read image .*000002\.jpg .*expected a readable PNG/JPEG image",
    ),
    "missing image folder": (
        lambda r: [p.rename(r / "celeba" / "moved") for p in [r / "celeba" / "img_align_celeba"]],
        r"missing folder .*img_align_celeba \(the aligned CelebA images\)",
    ),
    "missing partition file": (
        lambda r: (r / "celeba" / "list_eval_partition.txt").unlink(),
        r"missing file .*list_eval_partition\.txt",
    ),
    "attribute value 2": (
        lambda r: (
            _rewrite(r / "celeba" / "list_attr_celeba.txt", "000003.jpg -1", "000003.jpg  2")
            or _rewrite(r / "celeba" / "list_attr_celeba.txt", "000003.jpg  1", "000003.jpg  2")
        ),
        r"list_attr_celeba\.txt line 5 has a value other than 1 and -1",
    ),
    "short attribute row": (
        lambda r: _rewrite(r / "celeba" / "list_attr_celeba.txt", "000004.jpg", "000004.jpg\n"),
        r"list_attr_celeba\.txt line 6 has 0 values; expected a file name and 40 values",
    ),
    "bad image count": (
        lambda r: _rewrite(r / "celeba" / "list_attr_celeba.txt", "10\n", "11\n"),
        r"announces 11 images but lists 10",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_bad_celeba_files_are_reported_by_name(celeba, case):
    corrupt, message = CORRUPTIONS[case]
    corrupt(celeba)
    with pytest.raises(UserError, match=message):
        build("data=celeba", "task=attributes", f"data.root={celeba}")


def test_unknown_attribute_and_count_mismatch(celeba):
    with pytest.raises(UserError, match=r"attributes names 'Smiley', which is not an attribute"):
        build(
            "data=celeba",
            "task=attributes",
            f"data.root={celeba}",
            "data.tasks.attributes.attributes=[Smiley]",
            "data.tasks.attributes.num_classes=1",
        )
    with pytest.raises(UserError, match=r"num_classes=40 but 1 attributes"):
        build("data=celeba", "task=attributes", f"data.root={celeba}", "data.tasks.attributes.attributes=[Male]")
    with pytest.raises(UserError, match=r"no split 'holdout'"):
        build("data=celeba", "task=attributes", f"data.root={celeba}", "data.val_split=holdout")
