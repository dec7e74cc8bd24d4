"""Building each task's ``LabelSpec`` from the data config, and decoding images to tensors.

What a label of each kind looks like, how it is checked, filled when missing and moved
with the image is the task kind's business (see ``mtl_cli.tasks``); this module only
pairs each selected task with its kind's class and the dataset's facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from mtl_cli.errors import UserError
from mtl_cli.tasks.labels import LabelSpec
from mtl_cli.tasks.registry import task_kind


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
            task_class=task_kind(str(kind), name),
            num_classes=None if num_classes is None else int(num_classes),
            ignore_index=-1 if ignore is None else int(ignore),
            options={k: v for k, v in data_info.items() if k not in ("kind", "num_classes", "ignore_index")},
        )
    return specs
