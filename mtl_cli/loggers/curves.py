"""curves.png: train loss per task, each val metric and the task weights over epochs, from metrics.csv rows."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# columns that are bookkeeping, not curves
SKIPPED = {"epoch", "step", "lr", "time_s", "train/loss"}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def curve_panels(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Panel title -> the columns drawn in it: train losses, task weights, then one per metric."""
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns and c not in SKIPPED)
    losses = [c for c in columns if c.startswith("train/") and c.endswith("_loss")]
    weights = [c for c in columns if c.startswith("weight/")]
    metrics = [c for c in columns if c not in losses and c not in weights and not c.startswith("train/")]
    panels = {"train loss per task": losses} if losses else {}
    panels.update({metric: [metric] for metric in metrics})
    if weights:
        panels["task weights"] = weights
    return panels


def _label(column: str) -> str:
    if column.startswith("train/") and column.endswith("_loss"):
        return column[len("train/") : -len("_loss")]
    return column.split("/", 1)[1] if column.startswith("weight/") else column


def draw_curves(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """Draw ``rows`` (metrics.csv rows, numbers or their text) to ``path``, atomically; None when empty."""
    panels = curve_panels(rows)
    if not rows or not panels:
        return None
    path = Path(path)
    cols = min(3, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    epochs = [_number(row.get("epoch")) for row in rows]
    for ax, (title, columns) in zip(axes.flat, panels.items()):
        for column in columns:
            points = [(e, _number(row.get(column))) for e, row in zip(epochs, rows)]
            kept = [(e, v) for e, v in points if e is not None and v is not None]
            ax.plot([e for e, _ in kept], [v for _, v in kept], marker="o", markersize=3, label=_label(column))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(columns) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
