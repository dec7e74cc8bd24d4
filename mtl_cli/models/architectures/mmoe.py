"""Multi-gate Mixture-of-Experts (Ma et al. 2018): shared experts, one softmax gate per task."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from mtl_cli.errors import UserError
from mtl_cli.models.architectures.common import BackboneFactory, resolve_branch, run_stages, stage_copies
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.tasks import Task


class MMoEModel(MultiTaskModel):
    """A shared bottom (stages up to ``branch_at``), experts (copies of the later stages), gates.

    Task t's head reads ``sum_e softmax(W_t pool(h))_e * expert_e(h)``, where ``h`` is the
    bottom's output and ``pool`` global average pooling; a dense head also reads the
    bottom's stage outputs and the same mixture of every expert stage's output. Task block: the task's gate and
    head. Shared: the bottom and the experts. Shared features: the expert outputs stacked
    as ``[B, E, C, H, W]`` (every task's head input is a mixture of them).
    """

    per_task_modules = ("gates", "heads")

    def __init__(
        self, make_backbone: BackboneFactory, tasks: list[Task], num_experts: int = 4, branch_at: str | None = None
    ) -> None:
        super().__init__()
        if num_experts < 1:
            raise UserError(f"arch.num_experts={num_experts}: mmoe needs at least one expert")
        self.task_names = [t.name for t in tasks]
        backbone = make_backbone()
        names = backbone.stage_names
        cut = resolve_branch(names, branch_at, default=len(names) - 1)
        if cut >= len(names):
            raise UserError(
                f"arch.branch_at={branch_at} leaves no backbone stage for the mmoe experts; "
                f"branch at an earlier stage: {', '.join(names[:-1])}"
            )
        bottom_channels = backbone.stage_channels[cut - 1]
        self.bottom = nn.Sequential(*backbone.stages[:cut])
        self.experts = nn.ModuleList(stage_copies(backbone, make_backbone, cut, num_experts))
        self.gates = nn.ModuleDict({t.name: nn.Linear(bottom_channels, num_experts) for t in tasks})
        self.heads = nn.ModuleDict(
            {t.name: t.build_head(backbone.stage_channels, backbone.stage_strides) for t in tasks}
        )

    def gate_weights(self, bottom: Tensor) -> dict[str, Tensor]:
        """Each task's mixture weights over the experts, ``[B, E]``, rows summing to 1."""
        pooled = bottom.mean(dim=(2, 3))
        return {t: torch.softmax(self.gates[t](pooled), dim=-1) for t in self.task_names}

    def forward(self, images: Tensor, return_features: bool = False):  # type: ignore[override]
        shared = run_stages(self.bottom, images)
        bottom = shared[-1]
        # per expert stage j: the outputs of all experts stacked, [B, E, C_j, H_j, W_j]
        per_stage = [torch.stack(outs, dim=1) for outs in zip(*(run_stages(e, bottom) for e in self.experts))]
        size = (images.shape[-2], images.shape[-1])
        preds = {
            t: self.heads[t]([*shared, *(torch.einsum("be,be...->b...", g, s) for s in per_stage)], size)
            for t, g in self.gate_weights(bottom).items()
        }
        return (preds, per_stage[-1]) if return_features else preds


def build(arch: DictConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MultiTaskModel:
    return MMoEModel(make_backbone, tasks, num_experts=arch.num_experts, branch_at=arch.branch_at)
