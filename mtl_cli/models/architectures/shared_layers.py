"""Hard parameter sharing: a trunk shared up to a branch point, then per-task layers.

The layers a task passes through are the backbone stages, then (for dense tasks) a
decoder, then the task's output projection. ``arch.branch_at`` names the last shared one
of ``<backbone stages>..., decoder``: by default the whole backbone is shared and every
task has its own head (decoder + projection); ``branch_at=decoder`` also shares the
decoder, leaving only the output projections per task, which is ``arch=shared_weights``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from omegaconf import DictConfig
from torch import Tensor, nn

from mtl_cli.models.architectures.common import (
    BackboneFactory,
    resolve_branch,
    run_stages,
    stage_copies,
    trunk_outputs,
)
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.models.heads import DenseDecoder
from mtl_cli.tasks import Task

DECODER = "decoder"


class SharedLayersModel(MultiTaskModel):
    """Stages up to ``branch_at`` are shared; later stages are copied per task; one head per task.

    A task's head reads the outputs of all the stages it passes through, shared and own:
    every head fuses them all (skip connections); an image-level head then pools.
    Shared features: the shared stage outputs the task blocks read, packed into one
    ``[B, D]`` tensor (``common.trunk_outputs``) when there are several (every head reads
    every one), else the trunk's output. With the decoder shared (and at least one dense
    task) every task reads the decoder's output, each through its ``Task.build_projection``
    (dense tasks a 1x1 convolution, image-level tasks global pooling and a linear layer);
    the shared features are then the decoder's output. The shared decoder is as wide as
    the widest ``tasks.<t>.head_channels`` of the dense tasks.
    """

    per_task_modules = ("branches", "heads")

    def __init__(self, make_backbone: BackboneFactory, tasks: list[Task], branch_at: str | int | None = None) -> None:
        super().__init__()
        self.task_names = [t.name for t in tasks]
        backbone = make_backbone()
        stages = len(backbone.stage_names)
        cut = resolve_branch([*backbone.stage_names, DECODER], branch_at, default=stages)
        channels = backbone.stage_channels
        tails = stage_copies(backbone, make_backbone, min(cut, stages), len(tasks))
        self.trunk = nn.Sequential(*backbone.stages[: min(cut, stages)])
        self.branches = nn.ModuleDict({t.name: tail for t, tail in zip(tasks, tails)})
        dense = [t for t in tasks if t.dense]
        strides = backbone.stage_strides
        self.decoder = (
            DenseDecoder(channels, max(t.head_channels for t in dense), strides) if cut > stages and dense else None
        )
        if self.decoder is None:
            self.heads = task_heads(tasks, channels, strides)
        else:
            width = self.decoder.out_channels
            self.heads = nn.ModuleDict({t.name: t.build_projection(width) for t in tasks})

    def forward(self, images: Tensor, return_features: bool = False):  # type: ignore[override]
        size = (images.shape[-2], images.shape[-1])
        if self.decoder is not None:
            fused = self.decoder(run_stages(self.trunk, images))
            preds = {name: self.heads[name]([fused], size) for name in self.task_names}
            return (preds, fused) if return_features else preds
        features, shared = trunk_outputs(self.trunk, images, packed=return_features)
        preds: dict[str, Tensor] = {}
        for name in self.task_names:
            preds.update(branch_predictions(shared, self.branches[name], self.heads, [name], size))
        return (preds, features) if return_features else preds


def task_heads(tasks: Sequence[Task], channels: Sequence[int], strides: Sequence[int]) -> nn.ModuleDict:
    """One head per task (``Task.build_head``) reading stage outputs with ``channels`` channels and ``strides``."""
    return nn.ModuleDict({t.name: t.build_head(channels, strides) for t in tasks})


def branch_predictions(
    shared: Sequence[Tensor],
    branch: nn.Sequential,
    heads: Mapping[str, nn.Module],
    names: Sequence[str],
    size: tuple[int, int],
) -> dict[str, Tensor]:
    """The predictions of the tasks ``names`` that share ``branch`` after the trunk's stage outputs ``shared``.

    The branch runs once on the trunk's last output; each task's head reads the trunk's
    and the branch's stage outputs (``size``: the input's spatial size). Hard sharing (one
    branch per task) and grouped sharing (one branch per group) both go through here.
    """
    own = run_stages(branch, shared[-1]) if len(branch) else []
    return {name: heads[name]([*shared, *own], size) for name in names}


def build(arch: DictConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MultiTaskModel:
    return SharedLayersModel(make_backbone, tasks, branch_at=arch.branch_at)
