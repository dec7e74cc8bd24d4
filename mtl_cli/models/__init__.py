"""Models: backbones, task heads and the sharing architectures that combine them."""

from __future__ import annotations

from omegaconf import DictConfig

from mtl_cli.models.architectures import ARCHITECTURES, build_architecture
from mtl_cli.models.backbones import BACKBONES, Backbone, build_backbone
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.tasks import Task


def build_model(cfg: DictConfig, tasks: list[Task]) -> MultiTaskModel:
    """Build the multi-task model the config asks for (``arch=`` on ``backbone=``)."""
    backbone = cfg.backbone

    def make_backbone() -> Backbone:
        return build_backbone(
            backbone.name,
            pretrained=backbone.pretrained,
            width=backbone.width,
            weights=backbone.get("weights"),
            allow_partial=bool(backbone.get("allow_partial", False)),
        )

    return build_architecture(cfg.arch, make_backbone, tasks)


__all__ = ["ARCHITECTURES", "BACKBONES", "Backbone", "MultiTaskModel", "build_backbone", "build_model"]
