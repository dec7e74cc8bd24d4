"""Multi-Task Attention Network (Liu et al. 2019): a shared backbone, per-task soft attention.

Every backbone stage is split into its inner part and its last block. For stage s the
shared network gives the inner features u_s and the stage output p_s; task t's attention
module turns ``[u_s, g_t(a_t(s-1))]`` into a sigmoid mask and keeps ``a_t(s) = mask * p_s``,
where ``g_t`` (average pooling to the stage's resolution, then a 3x3 conv) carries the
task's previous attended features to this stage.
The task's head reads ``a_t(s)`` of every stage (a dense head fuses them; an image-level
head pools the last).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from mtl_cli.errors import UserError
from mtl_cli.models.architectures.common import BackboneFactory
from mtl_cli.models.backbones import Backbone
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.tasks import Task


def split_stage(stage: nn.Module, name: str, backbone: Backbone) -> tuple[nn.Sequential, nn.Sequential]:
    """``(inner, last)``: the stage cut before its last child that holds parameters.

    Raises ``UserError`` when the stage has no such cut (a single block), because then
    it has no inner features for the attention to read.
    """
    children = list(stage.children()) if isinstance(stage, nn.Sequential) else []
    with_params = [i for i, child in enumerate(children) if any(True for _ in child.parameters())]
    if not with_params or with_params[-1] == 0:
        raise UserError(
            f"arch=mtan cannot use backbone={backbone.name}: its stage '{name}' is a single block, and MTAN's "
            f"attention reads the features inside each stage (before its last block); "
            f"choose a backbone whose stages have several blocks (small_cnn, resnet18/34/50, mobilenet_v3_large)"
        )
    cut = with_params[-1]
    return nn.Sequential(*children[:cut]), nn.Sequential(*children[cut:])


def _conv_bn(cin: int, cout: int, kernel: int, activation: nn.Module) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), activation
    )


def _resize(x: Tensor, size: torch.Size) -> Tensor:
    return x if x.shape[-2:] == size else F.adaptive_avg_pool2d(x, size)


class TaskAttention(nn.Module):
    """One task's attention modules: a mask per stage and a carry between stages."""

    def __init__(self, inner_channels: list[int], stage_channels: list[int]) -> None:
        super().__init__()
        self.masks = nn.ModuleList(
            nn.Sequential(
                _conv_bn(cu * (1 if s == 0 else 2), cu, 1, nn.ReLU(inplace=True)),
                _conv_bn(cu, cp, 1, nn.Sigmoid()),
            )
            for s, (cu, cp) in enumerate(zip(inner_channels, stage_channels))
        )
        self.carries = nn.ModuleList(
            _conv_bn(stage_channels[s - 1], inner_channels[s], 3, nn.ReLU(inplace=True))
            for s in range(1, len(stage_channels))
        )

    def forward(self, s: int, inner: Tensor, output: Tensor, previous: Tensor | None) -> Tensor:
        """The task's attended features at stage ``s`` (all resized to ``output``'s resolution)."""
        size = output.shape[-2:]
        x = _resize(inner, size)
        if previous is not None:  # pooled first, so the carry's conv runs at the smaller resolution
            x = torch.cat([x, self.carries[s - 1](_resize(previous, size))], dim=1)
        return self.masks[s](x) * output


class MTANModel(MultiTaskModel):
    """Shared backbone with one ``TaskAttention`` per task, then one head per task.

    Task block: the task's attention modules and head. Shared: the backbone. Shared
    features: the backbone's output p(last stage).
    """

    per_task_modules = ("attention", "heads")

    def __init__(self, make_backbone: BackboneFactory, tasks: list[Task]) -> None:
        super().__init__()
        self.task_names = [t.name for t in tasks]
        backbone = make_backbone()
        parts = [split_stage(stage, name, backbone) for stage, name in zip(backbone.stages, backbone.stage_names)]
        self.inner = nn.ModuleList(inner for inner, _ in parts)
        self.last = nn.ModuleList(last for _, last in parts)
        inner_channels = self._inner_channels()
        self.attention = nn.ModuleDict({t.name: TaskAttention(inner_channels, backbone.stage_channels) for t in tasks})
        self.heads = nn.ModuleDict(
            {t.name: t.build_head(backbone.stage_channels, backbone.stage_strides) for t in tasks}
        )

    @torch.no_grad()
    def _inner_channels(self) -> list[int]:
        """Channels of each stage's inner features, from one probe forward in eval mode."""
        channels = []
        x = torch.zeros(1, 3, 64, 64)
        for inner, last in zip(self.inner, self.last):
            inner.eval()
            last.eval()
            u = inner(x)
            channels.append(u.shape[1])
            x = last(u)
            inner.train()
            last.train()
        return channels

    def forward(self, images: Tensor, return_features: bool = False):  # type: ignore[override]
        x = images
        attended: dict[str, list[Tensor]] = {t: [] for t in self.task_names}
        for s, (inner, last) in enumerate(zip(self.inner, self.last)):
            u = inner(x)
            x = last(u)
            for t in self.task_names:
                previous = attended[t][-1] if attended[t] else None
                attended[t].append(self.attention[t](s, u, x, previous))
        size = (images.shape[-2], images.shape[-1])
        preds = {t: self.heads[t](attended[t], size) for t in self.task_names}
        return (preds, x) if return_features else preds


def build(arch: DictConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MultiTaskModel:
    return MTANModel(make_backbone, tasks)
