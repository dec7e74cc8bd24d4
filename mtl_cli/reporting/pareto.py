"""The Pareto front of runs on two metrics, and its picture."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path


def pareto_front(points: Sequence[tuple[float, float]], higher: tuple[bool, bool]) -> list[int]:
    """Indices of the points no other point dominates (NaN points are never on the front).

    ``a`` dominates ``b`` when it is at least as good on both metrics and strictly better on
    one; "good" follows ``higher`` (True: higher is better) per metric. Equal points are
    all on the front.
    """
    signs = [1.0 if h else -1.0 for h in higher]
    scored = [(signs[0] * x, signs[1] * y) for x, y in points]
    finite = [i for i, (x, y) in enumerate(scored) if math.isfinite(x) and math.isfinite(y)]
    front = []
    for i in finite:
        xi, yi = scored[i]
        dominated = any(
            scored[j][0] >= xi and scored[j][1] >= yi and (scored[j][0] > xi or scored[j][1] > yi) for j in finite
        )
        if not dominated:
            front.append(i)
    return front


def plot_pareto(
    path: Path,
    points: Sequence[tuple[float, float]],
    labels: Sequence[str],
    axes: tuple[str, str],
    higher: tuple[bool, bool],
) -> list[int]:
    """Scatter every run, draw and highlight the front, write a PNG; return the front's indices."""
    import matplotlib  # imported here: mtl-train loads this module (report callback) but rarely plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto_front(points, higher)
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    ax.scatter([p[0] for p in points], [p[1] for p in points], color="0.6", label="runs", zorder=2)
    ordered = sorted(front, key=lambda i: points[i][0])
    ax.plot(
        [points[i][0] for i in ordered],
        [points[i][1] for i in ordered],
        color="tab:red",
        marker="o",
        linewidth=1.5,
        label="Pareto front",
        zorder=3,
    )
    for (x, y), label in zip(points, labels):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    arrow = {True: "higher is better", False: "lower is better"}
    ax.set_xlabel(f"{axes[0]} ({arrow[higher[0]]})")
    ax.set_ylabel(f"{axes[1]} ({arrow[higher[1]]})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return front
