"""Shared weights: one network end to end; only each task's output projection is its own."""

from __future__ import annotations

from omegaconf import DictConfig

from mtl_cli.models.architectures.common import BackboneFactory
from mtl_cli.models.architectures.shared_layers import DECODER, SharedLayersModel
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.tasks import Task


class SharedWeightsModel(SharedLayersModel):
    """Backbone and dense decoder shared by all tasks; per task only the last layer.

    This is hard sharing with the branch point at the very end, so it is defined as
    ``SharedLayersModel(branch_at="decoder")``: the two have the same parameters by
    construction. Dense tasks: shared decoder, then a 1x1 convolution each; image-level
    tasks: the globally pooled backbone output, then a linear layer each.
    """

    def __init__(self, make_backbone: BackboneFactory, tasks: list[Task]) -> None:
        super().__init__(make_backbone, tasks, branch_at=DECODER)


def build(arch: DictConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MultiTaskModel:
    return SharedWeightsModel(make_backbone, tasks)
