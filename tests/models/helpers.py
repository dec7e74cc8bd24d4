"""Tiny models and batches for architecture tests."""

from __future__ import annotations

import functools

import torch
from omegaconf import OmegaConf

from mtl_cli.data import MultiTaskCollate
from mtl_cli.data.shapes import ShapesDataset
from mtl_cli.models import MultiTaskModel, build_model
from mtl_cli.tasks import Task, build_task

INFO = {"cls": {"num_classes": 4}, "seg": {"num_classes": 5}, "multilabel": {"num_classes": 4}}
ARCHS = ["shared_weights", "shared_layers", "cross_stitch", "mtan", "mmoe"]


def tasks(*names: str) -> list[Task]:
    return [build_task(n, {"kind": n}, INFO.get(n, {})) for n in names]


def model(arch: str, names, backbone: str = "small_cnn", **options) -> MultiTaskModel:
    arch_cfg = {"name": arch, "branch_at": None, "num_experts": 4, "stitch_init": 0.9, **options}
    cfg = OmegaConf.create({"arch": arch_cfg, "backbone": {"name": backbone, "pretrained": None, "width": 8}})
    return build_model(cfg, tasks(*names))


@functools.cache
def batch(names: tuple[str, ...], size: int = 4) -> dict:
    """A real batch of ``size`` 32px scenes with targets for ``names`` (shared: do not modify)."""
    data = ShapesDataset(num=size, image_size=32, seed=0, tasks=list(names))
    return MultiTaskCollate(tasks(*names))([data[i] for i in range(size)])


def losses(model: MultiTaskModel, preds: dict, batch: dict) -> torch.Tensor:
    by_name = {t.name: t for t in tasks(*model.task_names)}
    return torch.stack([by_name[n].loss(preds[n], batch[n]) for n in model.task_names])
