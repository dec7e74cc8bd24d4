"""``LabelSpec``: what the data pipeline knows about one task's labels, backed by its task class.

Datasets, transforms and checks never branch on a kind name: they ask the spec, which
forwards to the class-level label methods of the task kind (``Task.missing_label``,
``Task.label_from_array``, ``Task.transform_label`` ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from mtl_cli.tasks.geometry import Geometry

if TYPE_CHECKING:
    from mtl_cli.tasks.base import Task


@dataclass(frozen=True)
class LabelSpec:
    """One task's label facts: its task class plus the settings the data pipeline needs.

    ``options`` holds the dataset-specific settings of ``data.tasks.<name>`` (e.g. the
    label folder, CelebA attribute names, whether depth is stored inverted).
    """

    name: str
    task_class: type[Task]
    num_classes: int | None = None
    ignore_index: int = -1
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The task kind (``tasks.<name>.kind``)."""
        return self.task_class.kind

    @property
    def dense(self) -> bool:
        """Per-pixel labels (one label file per image; resampled with the image)."""
        return self.task_class.dense

    def missing(self, size: tuple[int, int]) -> Tensor:
        """The target of a sample without a label for this task (``size`` = image ``(H, W)``)."""
        return self.task_class.missing_label(self, size)

    def from_array(self, array: np.ndarray, path: Path, size: tuple[int, int]) -> Tensor:
        """A label array read from ``path``, checked against the image ``size``, as the target tensor."""
        return self.task_class.label_from_array(self, array, path, size)

    def transform(self, target: Tensor, geometry: Geometry) -> Tensor:
        """The target after the sample's geometric change."""
        return self.task_class.transform_label(self, target, geometry)
