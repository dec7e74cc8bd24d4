"""Per-task label facts and the per-kind rules every dataset shares.

Target conventions (what the tasks consume): ``cls`` int64 scalar (< 0 = no label);
``seg`` int64 [H, W] (``ignore_index`` = no label); ``depth`` float32 [1, H, W] (0 =
invalid); ``normals`` float32 [3, H, W] unit vectors (all-zero = invalid); ``edges``
float32 [1, H, W] in {0, 1}; ``multilabel`` float32 [L] (< 0 = unknown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from mtl_cli.data.checks import DataFileError, check_array, check_class_labels, check_range
from mtl_cli.errors import UserError

DENSE_KINDS = ("seg", "depth", "normals", "edges")
IMAGE_LEVEL_KINDS = ("cls", "multilabel")


@dataclass(frozen=True)
class LabelSpec:
    """What the data pipeline needs to know about one task's labels.

    ``options`` holds the dataset-specific settings of ``data.tasks.<name>`` (e.g. the
    label folder, CelebA attribute names, whether depth is stored inverted).
    """

    name: str
    kind: str
    num_classes: int | None = None
    ignore_index: int = -1
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dense(self) -> bool:
        """Per-pixel labels (resampled with the image by geometric transforms)."""
        return self.kind in DENSE_KINDS

    def missing(self, size: tuple[int, int]) -> Tensor:
        """The target of a sample without a label for this task: nothing in it counts."""
        h, w = size
        if self.kind == "cls":
            return torch.tensor(-1, dtype=torch.int64)
        if self.kind == "multilabel":
            return torch.full((int(self.num_classes or 0),), -1.0)
        if self.kind == "seg":
            return torch.full((h, w), self.ignore_index, dtype=torch.int64)
        return torch.zeros((3 if self.kind == "normals" else 1, h, w))


def dense_target(kind: str, array: np.ndarray) -> Tensor:
    """A checked dense label array (``[H, W]`` or ``[H, W, C]``) as the task's target tensor."""
    if kind == "seg":
        return torch.from_numpy(np.ascontiguousarray(array.reshape(array.shape[:2]), dtype=np.int64))
    chw = array.reshape(array.shape[0], array.shape[1], -1).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(chw, dtype=np.float32))


def check_dense_label(spec: LabelSpec, array: np.ndarray, path: Path, size: tuple[int, int]) -> None:
    """Check one dense label file against its kind's shape, dtype and value rules.

    ``size`` is the ``(H, W)`` of the sample's image.
    """
    h, w = size
    kind = spec.kind
    if kind == "seg":
        check_array(array, path, [(h, w)], "fiu", f"{spec.name} class map aligned with the image")
        assert spec.num_classes is not None
        check_class_labels(array, path, spec.num_classes, spec.ignore_index)
    elif kind == "depth":
        check_array(array, path, [(h, w, 1), (h, w)], "f", f"{spec.name} depth aligned with the image")
        if not np.isfinite(array).all() or float(array.min()) < 0:
            raise DataFileError(f"{path} has negative or non-finite depth; expected values >= 0 (0 = invalid)")
    elif kind == "normals":
        check_array(array, path, [(h, w, 3)], "f", f"{spec.name} unit normals aligned with the image")
        check_range(array, path, -1.0, 1.0, "normal vector components")
    elif kind == "edges":
        check_array(array, path, [(h, w), (h, w, 1)], "fiu", f"{spec.name} edge map aligned with the image")
        if not np.isin(array, (0, 1)).all():
            raise DataFileError(f"{path} has edge values other than 0 and 1; expected a binary map")
    else:
        raise ValueError(f"{kind} is not a dense kind")


def image_target(array: np.ndarray) -> Tensor:
    """An ``[H, W, 3]`` image array with values in [0, 1] as a float32 ``[3, H, W]`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))


def pil_image_target(image: Image.Image) -> Tensor:
    """A decoded RGB image as a float32 ``[3, H, W]`` tensor in [0, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1).div_(255.0)


def label_specs(
    data_tasks: Mapping[str, Mapping[str, Any]],
    names: list[str],
    task_settings: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, LabelSpec]:
    """One ``LabelSpec`` per task: the task's effective settings over the data's facts.

    ``task_settings`` are the built tasks' settings (``tasks.<name>`` over
    ``data.tasks.<name>``); without them the data's own entries are used.
    """
    specs = {}
    for name in names:
        data_info = dict(data_tasks.get(name) or {})
        settings = {**data_info, **dict((task_settings or {}).get(name) or {})}
        kind = settings.get("kind")
        declared = data_info.get("kind")
        if declared is not None and kind != declared:
            raise UserError(
                f"tasks.{name}.kind={kind}, but the dataset's {name} labels are {declared} labels; "
                f"use a {declared} task for them"
            )
        if kind is None:
            raise UserError(f"data.tasks.{name}.kind is not set; say which kind of labels {name} holds")
        ignore = settings.get("ignore_index")
        num_classes = settings.get("num_classes")
        specs[name] = LabelSpec(
            name=name,
            kind=str(kind),
            num_classes=None if num_classes is None else int(num_classes),
            ignore_index=-1 if ignore is None else int(ignore),
            options={k: v for k, v in data_info.items() if k not in ("kind", "num_classes", "ignore_index")},
        )
    return specs
