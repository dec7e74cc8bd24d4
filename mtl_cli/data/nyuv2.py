"""NYUv2 (13 classes) in the preprocessed layout read by MTAN, Nash-MTL, FAMO, Auto-Lambda and LibMTL.

``<root>/{train,val}/{image,label,depth,normal}/<i>.npy``: image ``[288, 384, 3]`` floats in
[0, 1]; label ``[288, 384]`` class indices 0..12, -1 = ignore; depth ``[288, 384, 1]`` in
metres, 0 = invalid; normal ``[288, 384, 3]`` unit vectors, all-zero = invalid. 795 training
and 654 validation images. Tasks: seg, depth, normals (folders set in ``data/nyuv2.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig

from mtl_cli.data.npy_layout import NpyLayoutDataset, build_npy_splits
from mtl_cli.tasks.labels import LabelSpec

LAYOUT = "train/ and val/, each with image/, label/, depth/ and normal/ folders of 0.npy, 1.npy, ..."


def build_nyuv2(data_cfg: DictConfig, specs: Mapping[str, LabelSpec]) -> tuple[NpyLayoutDataset, NpyLayoutDataset]:
    """The NYUv2 train and validation splits under ``data.root``."""
    return build_npy_splits(data_cfg, specs, LAYOUT)
