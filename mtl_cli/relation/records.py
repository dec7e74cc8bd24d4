"""``relations.csv`` (the measured matrices, per epoch and over the run) and their heatmap."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from mtl_cli.utils.files import atomic_write

Matrix = Sequence[Sequence[float]]
MEASURES = ("cosine", "lookahead")


def write_relations_csv(
    path: Path, task_names: Sequence[str], history: Sequence[tuple[int | str, Mapping[str, Matrix]]]
) -> None:
    """One row per (epoch, measure, task i): ``epoch,measure,task,<task_1>,...,<task_k>``.

    Row ``task=i`` column ``j`` holds the affinity of task i onto task j; tasks appear in
    the run's order along both axes. ``history`` is ``[(epoch or "all", {measure: matrix})]``.
    Written atomically (temp file + rename).
    """
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "measure", "task", *task_names])
        for epoch, matrices in history:
            for measure in MEASURES:
                for task, row in zip(task_names, matrices[measure]):
                    writer.writerow([epoch, measure, task, *(f"{v:.6g}" for v in row)])


def save_heatmap(path: Path, task_names: Sequence[str], matrices: Mapping[str, Matrix], title: str) -> None:
    """One annotated heatmap panel per measure (row: source task i, column: target task j)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    k = len(task_names)
    fig, axes = plt.subplots(1, len(matrices), figsize=(1.2 + 1.9 * k * len(matrices), 0.9 + 1.6 * k), squeeze=False)
    for ax, (measure, matrix) in zip(axes[0], matrices.items()):
        values = np.asarray(matrix, dtype=float)
        limit = max(float(np.abs(values).max()), 1e-12)
        image = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{values[i, j]:.3g}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(k), task_names, rotation=45, ha="right")
        ax.set_yticks(range(k), task_names)
        ax.set_xlabel("target task j")
        ax.set_ylabel("source task i")
        ax.set_title(measure)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
