"""Hard parameter sharing: a trunk shared up to a branch point, then per-task layers."""

from __future__ import annotations

import copy

from torch import Tensor, nn

from mtl_cli.errors import UserError
from mtl_cli.models.backbones import Backbone
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.tasks import Task


def branch_index(backbone: Backbone, branch_at: str | int | None) -> int:
    """Number of backbone stages shared by all tasks for ``arch.branch_at``.

    ``None`` shares the whole backbone; a stage name (``layer3``) or a stage index shares
    the stages up to and including that one.
    """
    names = backbone.stage_names
    if branch_at is None or branch_at == "null":
        return len(names)
    if isinstance(branch_at, int) or str(branch_at).lstrip("-").isdigit():
        index = int(branch_at)
        if not 0 <= index < len(names):
            raise UserError(
                f"arch.branch_at={branch_at}: this backbone has stages 0..{len(names) - 1} ({', '.join(names)})"
            )
        return index + 1
    if branch_at not in names:
        raise UserError(f"arch.branch_at={branch_at}: this backbone has no such stage; its stages: {', '.join(names)}")
    return names.index(branch_at) + 1


class SharedLayersModel(MultiTaskModel):
    """Stages up to ``branch_at`` are shared; later stages are copied per task; one head per task."""

    def __init__(self, backbone: Backbone, tasks: list[Task], branch_at: str | int | None = None) -> None:
        super().__init__()
        self.task_names = [t.name for t in tasks]
        cut = branch_index(backbone, branch_at)
        self.trunk = nn.Sequential(*backbone.stages[:cut])
        rest = list(backbone.stages[cut:])
        self.branches = nn.ModuleDict(
            {t.name: nn.Sequential(*copy.deepcopy(rest)) for t in tasks}
        )
        out_channels = backbone.stage_channels[-1]
        self.heads = nn.ModuleDict({t.name: t.build_head(out_channels) for t in tasks})

    def forward(self, images: Tensor, return_features: bool = False):  # type: ignore[override]
        features = self.trunk(images)
        size = (images.shape[-2], images.shape[-1])
        preds = {name: self.heads[name](self.branches[name](features), size) for name in self.task_names}
        return (preds, features) if return_features else preds

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.branches[task].parameters()) + list(self.heads[task].parameters())
