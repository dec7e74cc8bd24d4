"""Cross-stitch networks (Misra et al. 2016): one column per task, mixed after every stage."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from mtl_cli.errors import UserError
from mtl_cli.models.architectures.common import BackboneFactory, stage_copies
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.tasks import Task

RECORD = "cross_stitch.csv"


class CrossStitchUnit(nn.Module):
    """Learned linear mixing of k task columns: ``out_i = sum_j alpha[i, j] * in_j``.

    ``alpha`` starts with ``self_weight`` on the diagonal and the rest of each row spread
    evenly, so every row sums to 1; ``self_weight=1`` is the identity (no mixing).
    """

    def __init__(self, num_tasks: int, self_weight: float) -> None:
        super().__init__()
        other = (1.0 - self_weight) / (num_tasks - 1) if num_tasks > 1 else 0.0
        alpha = torch.full((num_tasks, num_tasks), other)
        alpha.fill_diagonal_(self_weight if num_tasks > 1 else 1.0)
        self.alpha = nn.Parameter(alpha)

    def forward(self, stacked: Tensor) -> Tensor:
        """``stacked``: ``[B, k, ...]`` column outputs -> mixed ``[B, k, ...]``."""
        return torch.einsum("ij,bj...->bi...", self.alpha, stacked)


class CrossStitchModel(MultiTaskModel):
    """A full backbone column per task, a cross-stitch unit after each stage, one head per task.

    Task block: the task's column and head. Shared: the cross-stitch units (every task's
    gradient also reaches the other columns through them, in proportion to the mixing
    weights). A task's head reads the mixed output of its column at every stage.
    Shared features: the column outputs of the last stage stacked as ``[B, k, C, H, W]``,
    which the last unit mixes into every task's head input.
    """

    per_task_modules = ("columns", "heads")

    def __init__(self, make_backbone: BackboneFactory, tasks: list[Task], stitch_init: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= stitch_init <= 1.0:
            raise UserError(f"arch.stitch_init={stitch_init}: the initial self weight must be in [0, 1]")
        self.task_names = [t.name for t in tasks]
        backbone = make_backbone()
        self.stage_names = list(backbone.stage_names)
        columns = stage_copies(backbone, make_backbone, 0, len(tasks))
        self.columns = nn.ModuleDict({t.name: column for t, column in zip(tasks, columns)})
        self.stitches = nn.ModuleList(CrossStitchUnit(len(tasks), stitch_init) for _ in self.stage_names)
        self.heads = nn.ModuleDict(
            {t.name: t.build_head(backbone.stage_channels, backbone.stage_strides) for t in tasks}
        )

    def forward(self, images: Tensor, return_features: bool = False):  # type: ignore[override]
        inputs = [images] * len(self.task_names)
        stacked = images
        outputs: list[list[Tensor]] = [[] for _ in self.task_names]
        for s, stitch in enumerate(self.stitches):
            stacked = torch.stack([self.columns[t][s](x) for t, x in zip(self.task_names, inputs)], dim=1)
            mixed = stitch(stacked)
            inputs = mixed.unbind(dim=1)
            for seen, x in zip(outputs, inputs):
                seen.append(x)
        size = (images.shape[-2], images.shape[-1])
        preds = {t: self.heads[t](seen, size) for t, seen in zip(self.task_names, outputs)}
        return (preds, stacked) if return_features else preds

    def mixing_matrices(self) -> list[Tensor]:
        """The learned ``alpha`` of every stage (row i: what task i's column reads from each column)."""
        return [stitch.alpha.detach().cpu() for stitch in self.stitches]

    def save_records(self, run_dir: Path) -> list[Path]:
        """``cross_stitch.csv``: one row per (stage, task): the weights that task's column reads."""
        path = Path(run_dir) / RECORD
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["stage", "task", *self.task_names])
            for stage, alpha in zip(self.stage_names, self.mixing_matrices()):
                for task, row in zip(self.task_names, alpha.tolist()):
                    writer.writerow([stage, task, *(f"{v:.6g}" for v in row)])
        return [path]


def build(arch: DictConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MultiTaskModel:
    return CrossStitchModel(make_backbone, tasks, stitch_init=arch.stitch_init)
