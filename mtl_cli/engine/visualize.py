"""A picture of a few validation images with ground truth and predictions per task.

The grid is generic: each task draws its own maps (``Task.draw``) or over the image
(``Task.draw_on_image``) and describes its image-level labels (``Task.describe``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from mtl_cli.tasks import Task


def _caption(task: Task, target: Tensor, pred: Tensor) -> str:
    """``"<task>: gt ... / pred ..."`` for an image-level task ("" when the task describes nothing)."""
    gt, pr = task.describe(target), task.describe(pred)
    return f"{task.name}: gt {gt} / pred {pr}" if gt or pr else ""


def save_prediction_grid(
    path: str | Path,
    images: Tensor,
    targets: Mapping[str, Tensor],
    preds: Mapping[str, Tensor],
    tasks: Sequence[Task],
    mean: Sequence[float],
    std: Sequence[float],
) -> None:
    """One row per image: the image, then ground truth and prediction for each dense task
    and each task that draws on the image (``Task.draws_on_image``, e.g. boxes).

    Image-level tasks are written into the image's title. ``preds`` are raw head outputs,
    turned into predictions by ``Task.predict``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [t for t in tasks if t.dense or t.draws_on_image]
    rows, cols = images.shape[0], 1 + 2 * len(drawn)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.0 * rows), squeeze=False)
    pictures = images.detach().float().cpu() * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    predictions = {t.name: t.predict(preds[t.name]).cpu() for t in tasks}
    for r in range(rows):
        axes[r][0].imshow(pictures[r].permute(1, 2, 0).clamp(0, 1).numpy())
        captions = [_caption(t, targets[t.name][r], predictions[t.name][r]) for t in tasks if not t.dense]
        axes[r][0].set_title("\n".join(c for c in captions if c) or "image", fontsize=7)
        for i, task in enumerate(drawn):
            for j, (label, value) in enumerate((("gt", targets[task.name][r]), ("pred", predictions[task.name][r]))):
                value = value.detach().float().cpu()
                if task.dense:
                    array, options = task.draw(value)
                else:
                    array, options = task.draw_on_image(pictures[r].clamp(0, 1), value)
                ax = axes[r][1 + 2 * i + j]
                ax.imshow(array, **options)
                ax.set_title(f"{task.name} {label}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
