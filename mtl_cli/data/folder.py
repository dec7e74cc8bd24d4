"""The user's own data: a folder of images plus, per task, label files or one CSV.

Layout (``<split>`` is ``data.train_split`` / ``data.val_split``)::

    <root>/<split>/images/<name>.png|jpg|...       the images
    <root>/<split>/<task>/<name>.png|npy            dense tasks, one file per image
    <root>/<split>/<task>.csv                       image-level tasks, a header row ("image", then
                                                    the label columns) and one row per image

Each task kind says which files it reads and what they hold (``Task.label_suffixes``,
``label_from_png``, ``label_from_array``, ``csv_columns``, ``label_from_cells``), e.g.
seg: a class-map PNG or ``.npy``; depth: ``.npy`` metres or a 16-bit PNG divided by
``data.tasks.<task>.png_scale``; cls: ``image,label``; multilabel: ``image,<name1>,...``
with 1 / 0 per label and -1 or empty for unknown.

Any image may lack a label for any task (no file, no CSV row, an empty cell): the sample
still trains the other tasks and carries ``valid[task] = False`` so the task's loss and
metrics skip it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import Dataset

from mtl_cli.data.checks import (
    IMAGE_SUFFIXES,
    DataFileError,
    read_image,
    read_label_image,
    read_npy,
    read_text,
    require_dir,
    require_root,
    sample_indices,
)
from mtl_cli.data.labels import pil_image_target
from mtl_cli.data.transforms import resize_sample
from mtl_cli.errors import UserError
from mtl_cli.tasks.labels import LabelSpec

LAYOUT = "<split>/images/ plus <split>/<task>/ label files or <split>/<task>.csv per task (README: Datasets)"
IMAGES = "images"


def _by_stem(folder: Path, suffixes: tuple[str, ...], what: str) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in suffixes:
            continue
        if path.stem in files:
            raise DataFileError(f"{files[path.stem]} and {path} are both {what} for '{path.stem}'; keep one")
        files[path.stem] = path
    return files


def _read_csv(path: Path, spec: LabelSpec, images: dict[str, Path]) -> dict[str, Tensor]:
    """Image stem -> target of an image-level task; images without a usable row are absent."""
    rows = list(csv.reader(io.StringIO(read_text(path, f"labels of task {spec.name}"), newline="")))
    if not rows or not rows[0] or rows[0][0].strip() != "image":
        raise DataFileError(f"{path} needs a header row starting with 'image'; expected image,label or image,<names>")
    kind = spec.task_class
    width = kind.csv_columns(spec)
    if len(rows[0]) - 1 != width:
        raise DataFileError(f"{path} has {len(rows[0]) - 1} label columns; task {spec.name} expects {width}")
    stems = {p.name: s for s, p in images.items()}
    targets: dict[str, Tensor] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        name, cells = row[0].strip(), [c.strip() for c in row[1:]]
        if name not in stems:
            raise DataFileError(f"{path} line {number} names {name}, which is not a file in {IMAGES}/")
        if len(cells) != width:
            raise DataFileError(f"{path} line {number} has {len(cells)} values; expected {width}")
        try:
            target = kind.label_from_cells(spec, cells)
        except ValueError:
            expected = kind.cells_expected(spec)
            raise DataFileError(f"{path} line {number} has value(s) {','.join(cells)}; expected {expected}") from None
        if target is not None:
            targets[stems[name]] = target
    return targets


class FolderDataset(Dataset):
    """One split of a user folder; items carry ``valid`` flags for every task."""

    def __init__(
        self,
        split_dir: Path,
        specs: Mapping[str, LabelSpec],
        num: int | None,
        check_files: int,
        resize: tuple[int, int] | None,
    ) -> None:
        self.specs = dict(specs)
        self.resize = resize
        image_dir = require_dir(split_dir / IMAGES, f"the images of split '{split_dir.name}'")
        images = _by_stem(image_dir, IMAGE_SUFFIXES, "images")
        if not images:
            raise DataFileError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {image_dir}")
        if num is not None and num > len(images):
            raise UserError(
                f"asked for {num} samples but {image_dir} holds {len(images)}; lower data.num_train/num_val"
            )
        stems = list(images)[:num] if num is not None else list(images)
        self.images = [images[s] for s in stems]
        self.dense_files: dict[str, list[Path | None]] = {}
        self.targets: dict[str, list[Tensor | None]] = {}
        for name, spec in self.specs.items():
            if spec.dense:
                folder = require_dir(split_dir / name, f"labels of task {name}")
                files = _by_stem(folder, spec.task_class.label_suffixes, f"{name} labels")
                orphans = sorted(set(files) - set(images))
                if orphans:
                    raise DataFileError(f"{files[orphans[0]]} has no image '{orphans[0]}.*' in {image_dir}")
                self.dense_files[name] = [files.get(s) for s in stems]
                labelled = sum(f is not None for f in self.dense_files[name])
            else:
                table = _read_csv(split_dir / f"{name}.csv", spec, images)
                self.targets[name] = [table.get(s) for s in stems]
                labelled = sum(t is not None for t in self.targets[name])
            if labelled == 0:
                raise DataFileError(f"no image of {split_dir} has a label for task {name}; add labels or drop the task")
        first = read_image(self.images[0])
        self.size = (first.height, first.width)
        for index in sample_indices(len(self.images), check_files):
            self[index]

    def __len__(self) -> int:
        return len(self.images)

    def _read_dense(self, spec: LabelSpec, path: Path, size: tuple[int, int]) -> Tensor:
        if path.suffix == ".npy":
            array = read_npy(path)
        else:
            array = spec.task_class.label_from_png(spec, read_label_image(path))
        return spec.from_array(array, path, size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.images[index]
        image = pil_image_target(read_image(path))
        size = (int(image.shape[1]), int(image.shape[2]))
        if self.resize is None and size != self.size:
            raise DataFileError(
                f"{path} is {size[0]}x{size[1]} but {self.images[0].name} is {self.size[0]}x{self.size[1]}; "
                f"set data.resize=[H,W] to bring all images to one size"
            )
        item: dict[str, Any] = {"image": image}
        valid = {}
        for name, spec in self.specs.items():
            if spec.dense:
                file = self.dense_files[name][index]
                target = None if file is None else self._read_dense(spec, file, size)
            else:
                target = self.targets[name][index]
            valid[name] = target is not None
            item[name] = spec.missing(size) if target is None else target
        item["valid"] = valid
        if self.resize is not None:
            item = resize_sample(item, self.specs, self.resize)
        return item


def build_folder(data_cfg: DictConfig, specs: Mapping[str, LabelSpec]) -> tuple[FolderDataset, FolderDataset]:
    """Train and validation splits of the user's folder ``data.root``."""
    root = require_root(data_cfg.root, "folder", LAYOUT)
    resize = None if data_cfg.resize is None else (int(data_cfg.resize[0]), int(data_cfg.resize[1]))

    def split(name: str, num: int | None) -> FolderDataset:
        return FolderDataset(root / name, specs, num, data_cfg.check_files, resize)

    return split(data_cfg.train_split, data_cfg.num_train), split(data_cfg.val_split, data_cfg.num_val)
