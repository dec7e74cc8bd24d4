"""The task weights over training: a log line, ``weights.csv`` and ``weights.png`` in the run directory."""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtl_cli.engine.callbacks.base import Callback, EpochRecord, StepRecord
from mtl_cli.utils.files import MetricsLog

if TYPE_CHECKING:
    from mtl_cli.engine.trainer import Trainer

log = logging.getLogger("mtl_cli.steps")  # to train.log only (see configs/train.yaml)


class WeightHistory(Callback):
    """Records the weights of every logged step (and what the method reports, e.g. gradient cosines).

    At every log point it logs one line and, with a ``run_dir``, appends a row to
    ``weights.csv`` (opened at the first row, so that rows a resumed run carries over
    come first). An epoch without a log point (fewer steps than ``log_every_n_steps``)
    gets one row at its end with the epoch's mean weights, so every run has a history.
    At the end of training it draws ``weights.png`` from the CSV, so the picture covers
    resumed runs too.
    """

    def __init__(self, run_dir: Path | None, task_names: Sequence[str]) -> None:
        self.task_names = list(task_names)
        self.run_dir = run_dir
        self.csv_path = run_dir / "weights.csv" if run_dir else None
        self.rows: MetricsLog | None = None
        self.recorded_epoch: int | None = None  # the epoch of the latest row

    def on_step_end(self, trainer: Trainer, step: StepRecord) -> None:
        self.record(step.step, step.epoch, list(step.weights.values()), step.report)

    def state_dict(self) -> Mapping[str, Any] | None:
        """The epoch of the latest row, so a resumed epoch does not add an end-of-epoch row twice."""
        return {"recorded_epoch": self.recorded_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.recorded_epoch = state.get("recorded_epoch")

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        if self.recorded_epoch != record.epoch:
            self.record(record.step, record.epoch, [record.weights[t] for t in self.task_names], {})

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.run_dir is not None:
            self.save_plot(self.run_dir / "weights.png")

    def record(self, step: int, epoch: int, weights: Sequence[float], report: Mapping[str, float]) -> None:
        """Log one step's weights and append them to ``weights.csv``."""
        shown = " ".join(f"{t} {w:.4g}" for t, w in zip(self.task_names, weights))
        extra = " ".join(f"{k} {v:.3f}" for k, v in report.items())
        log.info("step %d (epoch %d): weights %s%s", step, epoch, shown, f" | {extra}" if extra else "")
        self.recorded_epoch = epoch
        if self.csv_path is not None:
            if self.rows is None:
                self.rows = MetricsLog(self.csv_path)
            row: dict[str, float | int] = {"step": step, "epoch": epoch}
            row.update({f"weight/{t}": w for t, w in zip(self.task_names, weights)})
            row.update(report)
            self.rows.append(row)

    def save_plot(self, path: Path) -> None:
        """Weights per task against the step; gradient cosines in a second panel when recorded."""
        if self.csv_path is None or not self.csv_path.is_file():
            return
        with self.csv_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [int(r["step"]) for r in rows]
        cosines = [c for c in rows[0] if c.startswith("cos/")]
        panels = 2 if cosines else 1
        fig, axes = plt.subplots(panels, 1, figsize=(7, 3.2 * panels), sharex=True, squeeze=False)
        for task in self.task_names:
            axes[0][0].plot(steps, [float(r[f"weight/{task}"]) for r in rows], label=task)
        axes[0][0].set_ylabel("task weight")
        axes[0][0].legend(fontsize=8)
        if cosines:
            for column in cosines:
                axes[1][0].plot(steps, [float(r[column]) for r in rows], label=column[4:])
            axes[1][0].axhline(0.0, color="gray", linewidth=0.5)
            axes[1][0].set_ylabel("gradient cosine")
            axes[1][0].legend(fontsize=8)
        axes[-1][0].set_xlabel("step")
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
