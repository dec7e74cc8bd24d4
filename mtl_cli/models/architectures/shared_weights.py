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
    construction. Every task reads the shared decoder's output (the shared features):
    dense tasks through a 1x1 convolution each, image-level tasks through global pooling
    and a linear layer each (``ImageHead``). Without dense tasks there is no shared
    decoder: each image-level head fuses the backbone stages with its own decoder.
    """

    def __init__(self, make_backbone: BackboneFactory, tasks: list[Task]) -> None:
        super().__init__(make_backbone, tasks, branch_at=DECODER)


def build(arch: DictConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MultiTaskModel:
    return SharedWeightsModel(make_backbone, tasks)
