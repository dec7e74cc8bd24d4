"""COCO-format detection data (``data=coco``): an image folder plus an instances JSON per split.

Layout (``<split>`` is ``data.train_split`` / ``data.val_split``)::

    <root>/<split>/images/<file_name>        the images named by the JSON's "images"
    <root>/<split>/instances.json            COCO instances: "images" (id, file_name, width,
                                             height), "annotations" (image_id, category_id,
                                             bbox [x, y, w, h] in pixels, iscrowd), "categories"
    <root>/<split>/seg/<stem>.png|npy        optional: a class map per image for a ``seg`` task

Class ``k`` of the ``det`` task is the ``k``-th entry of "categories" (sorted by id), so
``data.tasks.det.num_classes`` must equal the number of categories; their names label
the boxes in pictures. Crowd annotations (``iscrowd: 1``) are left out. Every image in
``images/`` is a sample: one the JSON does not list has no ``det`` label, one listed
without annotations has no boxes (a negative); an image without a seg file has no
``seg`` label (partial labels, as for ``data=folder``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import Dataset

from mtl_cli.data.checks import (
    IMAGE_SUFFIXES,
    DataFileError,
    read_image,
    read_label_image,
    read_npy,
    require_dir,
    require_file,
    require_root,
    sample_indices,
)
from mtl_cli.data.labels import pil_image_target
from mtl_cli.data.transforms import resize_sample
from mtl_cli.errors import UserError
from mtl_cli.tasks.labels import LabelSpec

LAYOUT = "<split>/images/ and <split>/instances.json (COCO instances), optionally <split>/seg/ (docs/datasets.md)"
IMAGES = "images"
INSTANCES = "instances.json"


def _field(record: Any, key: str, kind: type | tuple[type, ...], path: Path, what: str) -> Any:
    """``record[key]`` checked to be a ``kind``, else a one-line error naming ``path``."""
    if not isinstance(record, dict) or key not in record:
        raise DataFileError(f"{path} is not COCO instances JSON: {what} has no '{key}'")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataFileError(f"{path} is not COCO instances JSON: '{key}' of {what} is {value!r}")
    return value


def read_instances(path: Path) -> dict[str, Any]:
    """The instances JSON at ``path``, with its three lists checked to be there."""
    try:
        content = json.loads(require_file(path, "COCO instances").read_text())
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"cannot read {path} ({exc}); expected a COCO instances JSON file") from None
    for key in ("images", "annotations", "categories"):
        _field(content, key, list, path, "the file")
    return content


class CocoDataset(Dataset):
    """One split of a COCO-format folder; items carry ``valid`` flags for every task."""

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
        files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataFileError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {image_dir}")
        if num is not None and num > len(files):
            raise UserError(f"asked for {num} samples but {image_dir} holds {len(files)}; lower data.num_train/num_val")
        self.images = files[:num] if num is not None else files
        self.sizes: dict[str, tuple[int, int]] = {}
        self.targets: dict[str, list[Tensor | None]] = {}
        self.seg_files: dict[str, list[Path | None]] = {}
        for name, spec in self.specs.items():
            if callable(getattr(spec.task_class, "label_from_boxes", None)):  # a box kind
                self.targets[name] = self._boxes(split_dir / INSTANCES, image_dir, spec)
                labelled = sum(t is not None for t in self.targets[name])
            elif spec.dense:
                self.seg_files[name] = self._label_files(split_dir / name, spec)
                labelled = sum(f is not None for f in self.seg_files[name])
            else:
                raise UserError(
                    f"data=coco provides boxes (det) and per-image dense labels (seg), not {spec.kind} labels"
                )
            if labelled == 0:
                raise DataFileError(f"no image of {split_dir} has a label for task {name}; add labels or drop the task")
        first = read_image(self.images[0])
        self.size = (first.height, first.width)
        for index in sample_indices(len(self.images), check_files):
            self[index]

    def _boxes(self, path: Path, image_dir: Path, spec: LabelSpec) -> list[Tensor | None]:
        """Per image: the checked box target, or ``None`` for an image the JSON does not list."""
        content = read_instances(path)
        categories = sorted(_field(c, "id", int, path, "a category") for c in content["categories"])
        if spec.num_classes != len(categories):
            raise UserError(
                f"{path} has {len(categories)} categories but task {spec.name} has num_classes={spec.num_classes}; "
                f"set data.tasks.{spec.name}.num_classes={len(categories)}"
            )
        label_of = {cid: k for k, cid in enumerate(categories)}
        by_id: dict[int, dict[str, Any]] = {}
        for record in content["images"]:
            image_id = _field(record, "id", int, path, "an image")
            file_name = _field(record, "file_name", str, path, f"image {image_id}")
            size = (
                _field(record, "height", int, path, f"image {image_id}"),
                _field(record, "width", int, path, f"image {image_id}"),
            )
            if not (image_dir / file_name).is_file():
                raise DataFileError(f"{path}: image {image_id} is {file_name}, which is missing from {image_dir}")
            by_id[image_id] = {"file": file_name, "size": size, "boxes": [], "labels": [], "sources": []}
        for ann in content["annotations"]:
            ann_id = ann.get("id", "?") if isinstance(ann, dict) else "?"
            what = f"annotation {ann_id}"
            image_id = _field(ann, "image_id", int, path, what)
            category = _field(ann, "category_id", int, path, what)
            bbox = _field(ann, "bbox", list, path, what)
            if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
                raise DataFileError(f"{path}: {what} has bbox {bbox!r}; expected [x, y, width, height] numbers")
            if image_id not in by_id:
                raise DataFileError(f'{path}: {what} refers to image {image_id}, which "images" does not list')
            if category not in label_of:
                raise DataFileError(
                    f'{path}: {what} has category_id {category}, which is not in "categories" '
                    f"(ids {', '.join(map(str, categories))})"
                )
            if ann.get("iscrowd", 0):
                continue
            entry = by_id[image_id]
            entry["boxes"].append(bbox)
            entry["labels"].append(label_of[category])
            entry["sources"].append(f"{path}: {what} (image {entry['file']})")
        by_file = {}
        for entry in by_id.values():
            by_file[entry["file"]] = spec.task_class.label_from_boxes(  # type: ignore[attr-defined]
                spec,
                np.asarray(entry["boxes"], dtype=np.float64).reshape(-1, 4),
                np.asarray(entry["labels"]),
                entry["size"],
                entry["sources"],
            )
            self.sizes[entry["file"]] = entry["size"]
        return [by_file.get(p.relative_to(image_dir).as_posix()) for p in self.images]

    def _label_files(self, folder: Path, spec: LabelSpec) -> list[Path | None]:
        """Per image: its label file in ``folder`` (same stem) or ``None``."""
        require_dir(folder, f"labels of task {spec.name}")
        files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in spec.task_class.label_suffixes}
        return [files.get(p.stem) for p in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.images[index]
        image = pil_image_target(read_image(path))
        size = (int(image.shape[1]), int(image.shape[2]))
        listed = self.sizes.get(path.name)
        if listed is not None and listed != size:
            raise DataFileError(f"{path} is {size[0]}x{size[1]} but the instances JSON says {listed[0]}x{listed[1]}")
        if self.resize is None and size != self.size:
            raise DataFileError(
                f"{path} is {size[0]}x{size[1]} but {self.images[0].name} is {self.size[0]}x{self.size[1]}; "
                f"set data.resize=[H,W] to bring all images to one size"
            )
        item: dict[str, Any] = {"image": image}
        valid = {}
        for name, spec in self.specs.items():
            if name in self.targets:
                target = self.targets[name][index]
            else:
                file = self.seg_files[name][index]
                target = None if file is None else self._read_dense(spec, file, size)
            valid[name] = target is not None
            item[name] = spec.missing(size) if target is None else target
        item["valid"] = valid
        if self.resize is not None:
            item = resize_sample(item, self.specs, self.resize)
        return item

    @staticmethod
    def _read_dense(spec: LabelSpec, path: Path, size: tuple[int, int]) -> Tensor:
        array = (
            read_npy(path) if path.suffix == ".npy" else spec.task_class.label_from_png(spec, read_label_image(path))
        )
        return spec.from_array(array, path, size)


def build_coco(data_cfg: DictConfig, specs: Mapping[str, LabelSpec]) -> tuple[CocoDataset, CocoDataset]:
    """Train and validation splits of the COCO-format folder ``data.root``."""
    root = require_root(data_cfg.root, "coco", LAYOUT)
    resize = None if data_cfg.resize is None else (int(data_cfg.resize[0]), int(data_cfg.resize[1]))

    def split(name: str, num: int | None) -> CocoDataset:
        return CocoDataset(root / name, specs, num, data_cfg.check_files, resize)

    return split(data_cfg.train_split, data_cfg.num_train), split(data_cfg.val_split, data_cfg.num_val)
