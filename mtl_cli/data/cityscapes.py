"""Cityscapes in the preprocessed layout of MTAN / Nash-MTL / FAMO / Auto-Lambda.

``<root>/{train,val}/{image,label_7,label_19,depth}/<i>.npy``: image ``[128, 256, 3]`` floats
in [0, 1]; ``label_7`` (default) or ``label_19`` class maps with -1 = ignore; depth
``[128, 256, 1]`` *inverse* depth (disparity-like), 0 = invalid. 2975 training and 500
validation images. Tasks: seg, depth. ``data.label_set`` (7 or 19) chooses the label folder
and the class count together.
"""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig

from mtl_cli.data.npy_layout import NpyLayoutDataset, build_npy_splits
from mtl_cli.errors import UserError
from mtl_cli.tasks.labels import LabelSpec

LAYOUT = "train/ and val/, each with image/, label_7/ (or label_19/) and depth/ folders of 0.npy, 1.npy, ..."
LABEL_SETS = (7, 19)


def build_cityscapes(data_cfg: DictConfig, specs: Mapping[str, LabelSpec]) -> tuple[NpyLayoutDataset, NpyLayoutDataset]:
    """The Cityscapes train and validation splits under ``data.root``."""
    if data_cfg.label_set not in LABEL_SETS:
        raise UserError(f"data.label_set={data_cfg.label_set}: Cityscapes comes with 7 or 19 classes; use 7 or 19")
    return build_npy_splits(data_cfg, specs, LAYOUT)
