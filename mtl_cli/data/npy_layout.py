"""The preprocessed ``.npy`` layout of the MTAN / LibMTL dense benchmarks (NYUv2, Cityscapes).

``<root>/<split>/image/<i>.npy`` holds an ``[H, W, 3]`` float image in [0, 1]; each task
reads ``<root>/<split>/<folder>/<i>.npy`` with the same index, the folder named by
``data.tasks.<task>.folder``. Indices run from 0 without gaps in every folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch.utils.data import Dataset

from mtl_cli.data.checks import (
    DataFileError,
    check_array,
    check_range,
    contiguous_npy_count,
    read_npy,
    require_dir,
    require_root,
    sample_indices,
)
from mtl_cli.data.labels import image_target
from mtl_cli.data.transforms import resize_sample
from mtl_cli.errors import UserError
from mtl_cli.tasks.labels import LabelSpec

IMAGE_FOLDER = "image"


class NpyLayoutDataset(Dataset):
    """One split of a preprocessed ``.npy`` dataset, checked up front.

    The constructor checks the folder structure (every needed folder present, indices
    contiguous, the same count everywhere) and fully reads the first ``check_files``
    samples and the last one; every later read checks shapes, dtypes and value ranges
    too, so a bad file is always reported by name.
    """

    def __init__(
        self,
        split_dir: Path,
        specs: Mapping[str, LabelSpec],
        num: int | None = None,
        check_files: int = 4,
        resize: tuple[int, int] | None = None,
    ) -> None:
        self.split_dir = split_dir
        self.specs = dict(specs)
        self.resize = resize
        require_dir(split_dir, f"the '{split_dir.name}' split")
        self.folders = {"image": split_dir / IMAGE_FOLDER}
        for name, spec in self.specs.items():
            self.folders[name] = split_dir / str(spec.options["folder"])
        counts = {}
        for name, folder in self.folders.items():
            require_dir(folder, "images" if name == "image" else f"labels of task {name}")
            counts[name] = contiguous_npy_count(folder)
        count = counts["image"]
        for name, n in counts.items():
            if n != count:
                raise DataFileError(
                    f"{self.folders[name]} holds {n} files but {self.folders['image']} holds {count}; "
                    f"every folder of a split needs one file per image"
                )
        if num is not None and num > count:
            raise UserError(f"asked for {num} samples but {split_dir} holds {count}; lower data.num_train/num_val")
        self.count = count if num is None else num
        first = self._path("image", 0)
        header = read_npy(first, header_only=True)
        check_array(header, first, [(None, None, 3)], "f", "an [H, W, 3] RGB image, values in [0, 1]")
        self.size: tuple[int, int] = (int(header.shape[0]), int(header.shape[1]))
        for index in sample_indices(self.count, check_files):
            self[index]

    def _path(self, name: str, index: int) -> Path:
        return self.folders[name] / f"{index}.npy"

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self._path("image", index)
        image = read_npy(path)
        check_array(image, path, [(*self.size, 3)], "f", "an RGB image like 0.npy, values in [0, 1]")
        check_range(image, path, 0.0, 1.0, "image values")
        item: dict[str, Any] = {"image": image_target(image)}
        for name, spec in self.specs.items():
            path = self._path(name, index)
            item[name] = spec.from_array(read_npy(path), path, self.size)
        if self.resize is not None:
            item = resize_sample(item, self.specs, self.resize)
        return item


def build_npy_splits(
    data_cfg: DictConfig, specs: Mapping[str, LabelSpec], layout: str
) -> tuple[NpyLayoutDataset, NpyLayoutDataset]:
    """The train and validation splits of ``data.root`` (``layout`` describes it for errors)."""
    root = require_root(data_cfg.root, data_cfg.name, layout)
    resize = None if data_cfg.resize is None else (int(data_cfg.resize[0]), int(data_cfg.resize[1]))

    def split(name: str, num: int | None) -> NpyLayoutDataset:
        return NpyLayoutDataset(root / name, specs, num, data_cfg.check_files, resize)

    return split(data_cfg.train_split, data_cfg.num_train), split(data_cfg.val_split, data_cfg.num_val)
