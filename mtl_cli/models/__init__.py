"""Models: backbones, task heads and the sharing architectures that combine them."""

from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig

from mtl_cli.errors import UserError
from mtl_cli.models.backbones import BACKBONES, Backbone, build_backbone
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.models.shared_layers import SharedLayersModel
from mtl_cli.tasks import Task


def _shared_layers(cfg: DictConfig, backbone: Backbone, tasks: list[Task]) -> MultiTaskModel:
    return SharedLayersModel(backbone, tasks, branch_at=cfg.arch.branch_at)


ARCHITECTURES: dict[str, Callable[[DictConfig, Backbone, list[Task]], MultiTaskModel]] = {
    "shared_layers": _shared_layers,
}


def build_model(cfg: DictConfig, tasks: list[Task]) -> MultiTaskModel:
    """Build the multi-task model the config asks for."""
    name = cfg.arch.name
    if name not in ARCHITECTURES:
        raise UserError(f"unknown architecture '{name}'; known architectures: {', '.join(ARCHITECTURES)}")
    backbone = build_backbone(cfg.backbone.name, pretrained=cfg.backbone.pretrained, width=cfg.backbone.width)
    return ARCHITECTURES[name](cfg, backbone, tasks)


__all__ = ["ARCHITECTURES", "BACKBONES", "Backbone", "MultiTaskModel", "build_backbone", "build_model"]
