"""A picture of a few validation images with ground truth and predictions per dense task."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from mtl_cli.tasks import Task


def _to_picture(task: Task, value: Tensor) -> tuple[np.ndarray, dict]:
    """An HxW or HxWx3 array and imshow options for one dense target or prediction."""
    value = value.detach().float().cpu()
    if task.kind == "seg":
        return value.numpy(), {"cmap": "tab10", "vmin": 0, "vmax": 9, "interpolation": "nearest"}
    if task.kind == "normals":
        return ((value.permute(1, 2, 0).numpy() + 1.0) / 2.0).clip(0, 1), {}
    if task.kind == "depth":
        return value[0].numpy(), {"cmap": "viridis"}
    return value[0].numpy(), {"cmap": "gray", "vmin": 0, "vmax": 1}


def _caption(task: Task, target: Tensor, pred: Tensor) -> str:
    if task.kind == "cls":
        return f"{task.name}: gt {int(target)} / pred {int(pred)}"
    if task.kind == "multilabel":
        gt = [i for i, v in enumerate(target.tolist()) if v > 0.5]
        pr = [i for i, v in enumerate(pred.tolist()) if v > 0.5]
        return f"{task.name}: gt {gt} / pred {pr}"
    return ""


def save_prediction_grid(
    path: str | Path,
    images: Tensor,
    targets: Mapping[str, Tensor],
    preds: Mapping[str, Tensor],
    tasks: Sequence[Task],
    mean: Sequence[float],
    std: Sequence[float],
) -> None:
    """One row per image: the image, then ground truth and prediction for each dense task.

    Image-level tasks are written into the image's title. ``preds`` are raw head outputs.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dense = [t for t in tasks if t.dense]
    rows, cols = images.shape[0], 1 + 2 * len(dense)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.0 * rows), squeeze=False)
    pictures = images.detach().float().cpu() * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    predictions = {t.name: t.predict(preds[t.name]).cpu() for t in tasks}
    for r in range(rows):
        axes[r][0].imshow(pictures[r].permute(1, 2, 0).clamp(0, 1).numpy())
        captions = [_caption(t, targets[t.name][r], predictions[t.name][r]) for t in tasks if not t.dense]
        axes[r][0].set_title("\n".join(c for c in captions if c) or "image", fontsize=7)
        for i, task in enumerate(dense):
            for j, (label, value) in enumerate((("gt", targets[task.name][r]), ("pred", predictions[task.name][r]))):
                array, options = _to_picture(task, value)
                ax = axes[r][1 + 2 * i + j]
                ax.imshow(array, **options)
                ax.set_title(f"{task.name} {label}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
