"""One overview picture per image: the input, every dense prediction and box set (drawn by its task), image-level results as titles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from mtl_cli.tasks import Task


def _caption(task: Task, record: Mapping[str, Any]) -> str:
    if task.kind == "cls":
        return f"{task.name}: {record['name']} ({record['probability']:.2f})"
    if task.kind == "multilabel":
        return f"{task.name}: {', '.join(record['labels']) or '-'}"
    return ""


def save_overview(
    path: Path, image: Tensor, tasks: Sequence[Task], predictions: Mapping[str, Tensor], records: Mapping[str, Any]
) -> None:
    """Write ``path``: ``image`` ([3, H, W] in [0, 1]) beside each dense task's decoded prediction.

    Tasks that draw on the image (``det`` boxes) get a panel of their drawing over ``image``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [t for t in tasks if t.dense or t.draws_on_image]
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(2.5 * (1 + len(panels)), 2.8), squeeze=False)
    axes[0][0].imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    captions = [_caption(t, records[t.name]) for t in tasks if t not in panels]
    axes[0][0].set_title("\n".join(captions) or "input", fontsize=7)
    for ax, task in zip(axes[0][1:], panels):
        prediction = predictions[task.name].float().cpu()
        array, options = task.draw_on_image(image, prediction) if task.draws_on_image else task.draw(prediction)
        ax.imshow(array, **options)
        ax.set_title(task.name, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
