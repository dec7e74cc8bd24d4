"""Grouped sharing: a trunk shared by every task, then one branch per group of tasks.

``arch.groups`` lists the groups (``[[cls,seg],[depth,normals,edges]]``); each group gets
its own copy of the backbone stages after ``arch.branch_at`` and its tasks' heads on it.
One group is hard sharing of the whole backbone; one group per task is ``shared_layers``
with the same ``branch_at``. ``groups=auto`` and ``groups=from:<run dir>`` are resolved to
an explicit list by the build step (``mtl_cli.engine.grouping``) before the model is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig
from torch import Tensor, nn

from mtl_cli.errors import UserError
from mtl_cli.models.architectures.common import BackboneFactory, resolve_branch, stage_copies, trunk_outputs
from mtl_cli.models.architectures.shared_layers import branch_predictions, task_heads
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.tasks import Task

GROUP_SEPARATOR = "+"


def parse_groups(groups: Any, task_names: Sequence[str]) -> list[list[str]]:
    """``arch.groups`` as a list of task-name lists, checked to put every task in exactly one group.

    Raises ``UserError`` (one line) for anything else: not a list of lists, an empty group,
    an unknown task, a task in two groups or in none.
    """
    if isinstance(groups, str):
        raise UserError(f"arch.groups={groups}: 'auto' and 'from:<run dir>' are resolved by mtl-train, not here")
    if not isinstance(groups, (list, tuple, ListConfig)) or not groups:
        raise UserError(f"arch.groups={groups}: give a list of task groups, e.g. arch.groups=[[cls,seg],[depth]]")
    parsed: list[list[str]] = []
    for group in groups:
        if not isinstance(group, (list, tuple, ListConfig)) or not group:
            raise UserError(f"arch.groups: {group} is not a non-empty list of tasks (e.g. [[cls,seg],[depth]])")
        parsed.append([str(name) for name in group])
    seen: set[str] = set()
    for name in (n for g in parsed for n in g):
        if name not in task_names:
            raise UserError(f"arch.groups: '{name}' is not a task of this run; its tasks are {', '.join(task_names)}")
        if name in seen:
            raise UserError(f"arch.groups: task '{name}' is in more than one group; put every task in exactly one")
        seen.add(name)
    missing = [n for n in task_names if n not in seen]
    if missing:
        raise UserError(f"arch.groups: no group holds {', '.join(missing)}; put every task in exactly one group")
    return parsed


def group_key(group: Sequence[str]) -> str:
    """The group's name in module paths and records: its tasks joined by ``+``."""
    return GROUP_SEPARATOR.join(group)


class GroupedModel(MultiTaskModel):
    """Stages up to ``branch_at`` shared; later stages copied once per group; one head per task.

    ``shared_parameters`` are the trunk's (what every task shares, and what the gradient
    methods balance); the shared features are the trunk's outputs (as in ``SharedLayersModel``). A task's own parameters
    are its head, and its group's branch when it is alone in the group (exactly as in
    ``SharedLayersModel``). The branch of a group of several tasks belongs to neither: like
    the task parameters it is trained with the plain sum of its tasks' gradients, and
    ``parameter_counts`` lists it as ``group:<task>+<task>``, so the counts still add up
    to the total.
    """

    per_task_modules = ("heads",)

    def __init__(
        self,
        make_backbone: BackboneFactory,
        tasks: list[Task],
        groups: Sequence[Sequence[str]],
        branch_at: str | int | None = None,
    ) -> None:
        super().__init__()
        self.task_names = [t.name for t in tasks]
        self.groups = parse_groups(groups, self.task_names)
        backbone = make_backbone()
        cut = resolve_branch(backbone.stage_names, branch_at, default=len(backbone.stage_names))
        tails = stage_copies(backbone, make_backbone, cut, len(self.groups))
        self.trunk = nn.Sequential(*backbone.stages[:cut])
        self.branches = nn.ModuleDict({group_key(g): tail for g, tail in zip(self.groups, tails)})
        self.heads = task_heads(tasks, backbone.stage_channels, backbone.stage_strides)

    def task_named_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """The task's head, after its group's branch when the task is alone in its group."""
        own = {}
        if task in self.branches:  # a single-task group is keyed by the task's name
            own = {f"branches.{name}": p for name, p in self.branches[task].named_parameters()}
        return {**own, **{f"heads.{name}": p for name, p in self.heads[task].named_parameters()}}

    def shared_parameters(self) -> list[nn.Parameter]:
        """The trunk's parameters (every task's gradient reaches them)."""
        return list(self.trunk.parameters())

    def parameter_counts(self) -> dict[str, int]:
        """Total, shared (the trunk), per task, and ``group:<key>`` for each non-empty branch of several tasks."""
        counts = super().parameter_counts()
        for group in self.groups:
            size = sum(p.numel() for p in self.branches[group_key(group)].parameters())
            if len(group) > 1 and size:  # an empty branch (branch_at = the last stage) counts nothing
                counts[f"group:{group_key(group)}"] = size
        return counts

    def forward(self, images: Tensor, return_features: bool = False):  # type: ignore[override]
        features, shared = trunk_outputs(self.trunk, images, packed=return_features)
        size = (images.shape[-2], images.shape[-1])
        by_task: dict[str, Tensor] = {}
        for group in self.groups:
            by_task.update(branch_predictions(shared, self.branches[group_key(group)], self.heads, group, size))
        preds = {name: by_task[name] for name in self.task_names}
        return (preds, features) if return_features else preds


def build(arch: DictConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MultiTaskModel:
    return GroupedModel(make_backbone, tasks, arch.groups, branch_at=arch.branch_at)
