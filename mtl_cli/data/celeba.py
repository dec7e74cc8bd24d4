"""CelebA face attributes in torchvision's layout, read without checksum checks.

``<root>/celeba/`` (or ``<root>`` itself) holds ``img_align_celeba/<name>.jpg``,
``list_attr_celeba.txt`` (line 1: the image count, line 2: the 40 attribute names, then one
line per image: file name and 40 values, 1 = present, -1 = absent) and
``list_eval_partition.txt`` (file name and 0 = train, 1 = valid, 2 = test). Each task is a
multilabel task over the attributes listed in ``data.tasks.<task>.attributes`` (all 40,
in file order, when not given): one task of 40 labels, attribute groups, or one binary
task per attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import Dataset

from mtl_cli.data.checks import (
    DataFileError,
    read_image,
    read_text,
    require_dir,
    require_root,
    sample_indices,
)
from mtl_cli.data.labels import pil_image_target
from mtl_cli.data.transforms import resize_sample
from mtl_cli.errors import UserError
from mtl_cli.tasks.labels import LabelSpec

LAYOUT = "celeba/ with img_align_celeba/, list_attr_celeba.txt and list_eval_partition.txt (torchvision's layout)"
SPLITS = {"train": 0, "valid": 1, "val": 1, "test": 2}
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"


def celeba_dir(root: Path) -> Path:
    """The folder holding the annotation files: ``<root>/celeba`` (torchvision) or ``<root>``."""
    nested = root / "celeba"
    return nested if (nested / ATTR_FILE).is_file() or not (root / ATTR_FILE).is_file() else root


def read_attribute_table(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """``(attribute names, file names, values int8 [N, A] in {-1, 1})`` of ``list_attr_celeba.txt``."""
    lines = read_text(path, "CelebA attribute annotations").splitlines()
    expected = "line 1: the number of images; line 2: the attribute names; then '<file> <1|-1> ...' per image"
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataFileError(f"{path} does not start with the image count; expected {expected}")
    names = lines[1].split()
    files, rows = [], []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise DataFileError(
                f"{path} line {number} has {len(parts) - 1} values; expected a file name and {len(names)} values"
            )
        files.append(parts[0])
        rows.append(parts[1:])
    try:
        values = np.array(rows, dtype=np.str_).astype(np.int8) if rows else np.zeros((0, len(names)), np.int8)
    except ValueError:
        raise DataFileError(f"{path} holds a non-numeric attribute value; expected 1 or -1 per attribute") from None
    bad = ~np.isin(values, (-1, 1))
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataFileError(f"{path} line {row + 3} has a value other than 1 and -1; expected 1 or -1 per attribute")
    if int(lines[0]) != len(files):
        raise DataFileError(f"{path} announces {int(lines[0])} images but lists {len(files)}; expected {expected}")
    return names, files, values


def read_partition(path: Path) -> dict[str, int]:
    """File name -> split id (0 train, 1 valid, 2 test) from ``list_eval_partition.txt``."""
    split_of = {}
    for number, line in enumerate(read_text(path, "CelebA split list").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DataFileError(f"{path} line {number} reads '{line.strip()}'; expected '<file> <0|1|2>'")
        split_of[parts[0]] = int(parts[1])
    return split_of


class CelebADataset(Dataset):
    """One split of CelebA; every task is a multilabel target over its attributes."""

    def __init__(
        self,
        folder: Path,
        files: list[str],
        targets: Mapping[str, torch.Tensor],
        specs: Mapping[str, LabelSpec],
        resize: tuple[int, int] | None,
    ) -> None:
        self.image_dir = folder / IMAGE_DIR
        self.files = files
        self.targets = dict(targets)
        self.specs = dict(specs)
        self.resize = resize

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        draft = None if self.resize is None else (self.resize[1], self.resize[0])
        img = read_image(self.image_dir / self.files[index], draft_size=draft)
        image = pil_image_target(img)
        item: dict[str, Any] = {"image": image}
        for name, target in self.targets.items():
            item[name] = target[index]
        if self.resize is not None:
            item = resize_sample(item, self.specs, self.resize)
        return item


def _columns(spec: LabelSpec, names: list[str], path: Path) -> list[int]:
    wanted = spec.options.get("attributes")
    wanted = list(names) if wanted is None else [str(a) for a in wanted]
    unknown = [a for a in wanted if a not in names]
    if unknown:
        raise UserError(
            f"data.tasks.{spec.name}.attributes names '{unknown[0]}', which is not an attribute in {path}; "
            f"its attributes: {', '.join(names)}"
        )
    if spec.num_classes != len(wanted):
        raise UserError(
            f"task {spec.name} has num_classes={spec.num_classes} but {len(wanted)} attributes; "
            f"set data.tasks.{spec.name}.num_classes={len(wanted)}"
        )
    return [names.index(a) for a in wanted]


def build_celeba(data_cfg: DictConfig, specs: Mapping[str, LabelSpec]) -> tuple[CelebADataset, CelebADataset]:
    """The CelebA train and validation splits (``data.train_split`` / ``data.val_split``: train, valid, test)."""
    folder = celeba_dir(require_root(data_cfg.root, "celeba", LAYOUT))
    require_dir(folder / IMAGE_DIR, "the aligned CelebA images")
    names, files, values = read_attribute_table(folder / ATTR_FILE)
    split_of = read_partition(folder / PARTITION_FILE)
    row_of = {f: i for i, f in enumerate(files)}
    columns = {name: _columns(spec, names, folder / ATTR_FILE) for name, spec in specs.items()}
    resize = None if data_cfg.resize is None else (int(data_cfg.resize[0]), int(data_cfg.resize[1]))

    def split(split_name: str, num: int | None) -> CelebADataset:
        if split_name not in SPLITS:
            raise UserError(f"CelebA has no split '{split_name}'; use one of: train, valid, test")
        chosen = [f for f, s in split_of.items() if s == SPLITS[split_name]]
        if not chosen:
            raise DataFileError(f"{folder / PARTITION_FILE} lists no image of split '{split_name}'")
        if num is not None:
            if num > len(chosen):
                raise UserError(f"asked for {num} {split_name} images but CelebA's split holds {len(chosen)}")
            chosen = chosen[:num]
        missing = [f for f in chosen if f not in row_of]
        if missing:
            raise DataFileError(f"{folder / ATTR_FILE} has no attributes for {missing[0]}, listed in {PARTITION_FILE}")
        rows = np.array([row_of[f] for f in chosen], dtype=np.int64)
        targets = {n: torch.from_numpy((values[rows][:, cols] > 0).astype(np.float32)) for n, cols in columns.items()}
        dataset = CelebADataset(folder, chosen, targets, specs, resize)
        for index in sample_indices(len(dataset), data_cfg.check_files):
            dataset[index]
        return dataset

    return split(data_cfg.train_split, data_cfg.num_train), split(data_cfg.val_split, data_cfg.num_val)
