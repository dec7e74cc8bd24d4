"""The training loop: one pass over the data per epoch, validation, records and checkpoints."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from mtl_cli.engine.checkpoint import save_checkpoint
from mtl_cli.engine.evaluate import evaluate
from mtl_cli.engine.records import MetricsLog, flatten_metrics, format_epoch_summary
from mtl_cli.errors import UserError
from mtl_cli.models import MultiTaskModel
from mtl_cli.tasks import Task
from mtl_cli.weighting import StepContext, Weighting
from mtl_cli.weighting.history import WeightHistory

log = logging.getLogger("mtl_cli")


@dataclass
class TrainerSettings:
    """The loop's knobs (a subset of ``trainer.*``)."""

    epochs: int
    seed: int
    max_steps: int | None = None
    log_every_n_steps: int = 10
    progress: bool = True
    monitor: str = "auto"


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0
    step: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    best_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    last_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    train_seconds: float = 0.0
    train_images: int = 0


class Trainer:
    """Trains ``model`` on ``tasks`` with a weighting method, validating after every epoch.

    The per-step work is: forward, one loss per task, ``weighting.backward``, optimiser
    step. Logging reads the running sums only every ``log_every_n_steps`` steps, so the
    step itself never waits on the device.
    """

    def __init__(
        self,
        model: MultiTaskModel,
        tasks: Sequence[Task],
        weighting: Weighting,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        train_loader: DataLoader,
        val_loader: DataLoader,
        device: torch.device,
        settings: TrainerSettings,
        run_dir: Path | None = None,
        checkpoint_extras: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.model = model
        self.tasks = list(tasks)
        self.task_names = [t.name for t in self.tasks]
        self.weighting = weighting
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.device = device
        self.settings = settings
        self.run_dir = run_dir
        self.checkpoint_extras = checkpoint_extras
        self.state = TrainState()
        self.monitor_task, self.monitor_metric, self.monitor_higher = self._resolve_monitor(settings.monitor)
        self.metrics_log = MetricsLog(run_dir / "metrics.csv") if run_dir else None
        self.weight_history = WeightHistory(run_dir, self.task_names)

    # ----------------------------------------------------------------- setup
    def _resolve_monitor(self, monitor: str) -> tuple[str, str, bool]:
        if monitor == "auto":
            task = self.tasks[0]
            metric = task.primary_metric
        else:
            task_name, _, metric = monitor.partition(".")
            match = [t for t in self.tasks if t.name == task_name]
            if not match:
                raise UserError(
                    f"trainer.monitor={monitor}: no task '{task_name}'; use <task>.<metric> with a task of this run"
                )
            task = match[0]
        directions = task.metrics().higher_is_better
        if metric not in directions:
            raise UserError(
                f"trainer.monitor={monitor}: task '{task.name}' has no metric '{metric}'; "
                f"its metrics: {', '.join(directions)}"
            )
        return task.name, metric, directions[metric]

    # ----------------------------------------------------------------- training
    def _epoch_loader(self, epoch: int) -> DataLoader:
        """Reseed the shuffling generator per epoch, so epoch k's order does not depend on history."""
        generator = getattr(self.train_loader, "generator", None)
        if generator is not None:
            generator.manual_seed(self.settings.seed * 1000 + epoch)
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        return self.train_loader

    def train_epoch(self, epoch: int) -> tuple[dict[str, float], dict[str, float]]:
        """One pass over the training data; returns the mean loss and mean weight per task."""
        self.model.train()
        k = len(self.tasks)
        loss_sum = torch.zeros(k, device=self.device)
        weight_sum = torch.zeros(k, device=self.device)
        first_bad_step = torch.full((k,), -1, dtype=torch.long, device=self.device)
        steps = 0
        needs_features = self.weighting.needs_features
        shared = self.model.shared_parameters()
        shared_ids = {id(p) for p in shared}
        task_params = [p for p in self.model.parameters() if p.requires_grad and id(p) not in shared_ids]
        max_steps = self.settings.max_steps
        bar = tqdm(
            self._epoch_loader(epoch),
            desc=f"epoch {epoch}/{self.settings.epochs}",
            disable=None if self.settings.progress else True,  # None: only on a terminal
            leave=False,
            dynamic_ncols=True,
        )
        start = time.perf_counter()
        images_seen = 0
        for batch in bar:
            images = batch["image"].to(self.device, non_blocking=True)
            valid = batch.get("valid", {})
            self.optimizer.zero_grad(set_to_none=True)
            if needs_features:
                preds, features = self.model(images, return_features=True)
            else:
                preds, features = self.model(images), None
            task_losses = [
                task.loss(
                    preds[task.name],
                    task.to_device(batch[task.name], self.device),
                    valid[task.name].to(self.device) if task.name in valid else None,
                )
                for task in self.tasks
            ]
            losses = torch.stack(task_losses)
            context = StepContext(shared, features, self.state.step, epoch, task_losses, task_params)
            weights = self.weighting.backward(losses, context)
            self.optimizer.step()

            detached = losses.detach()
            loss_sum += detached
            weight_sum += weights.detach()
            bad = ~torch.isfinite(detached) & (first_bad_step < 0)
            first_bad_step = torch.where(bad, torch.full_like(first_bad_step, self.state.step), first_bad_step)
            self.state.step += 1
            steps += 1
            images_seen += images.shape[0]
            at_limit = max_steps is not None and self.state.step >= max_steps
            if steps % self.settings.log_every_n_steps == 0 or at_limit:
                self._check_finite(first_bad_step, epoch)
                self.weight_history.record(
                    self.state.step, epoch, weights.tolist(), self.weighting.step_report(self.state.step)
                )
                if self.settings.progress:
                    means = (loss_sum / steps).tolist()
                    bar.set_postfix_str(
                        f"loss {sum(means):.3f} " + " ".join(f"{n} {v:.3f}" for n, v in zip(self.task_names, means))
                    )
            if at_limit:
                break
        bar.close()
        self._check_finite(first_bad_step, epoch)
        self.state.train_seconds += time.perf_counter() - start
        self.state.train_images += images_seen
        steps = max(steps, 1)
        mean_losses = loss_sum / steps
        self.weighting.epoch_end(mean_losses)
        return (
            dict(zip(self.task_names, mean_losses.tolist())),
            dict(zip(self.task_names, (weight_sum / steps).tolist())),
        )

    def _check_finite(self, first_bad_step: Tensor, epoch: int) -> None:
        bad = first_bad_step.tolist()
        for name, step in zip(self.task_names, bad):
            if step >= 0:
                where = f" in {self.run_dir / 'checkpoints'}" if self.run_dir else ""
                raise UserError(
                    f"the loss of task '{name}' became NaN/inf at step {step} (epoch {epoch}); training stopped, "
                    f"the last good checkpoint is kept{where}; lower optim.lr or check the data"
                )

    # ----------------------------------------------------------------- the loop
    def fit(self) -> TrainState:
        """Train until ``epochs`` (or ``max_steps``), validating and checkpointing every epoch."""
        start_epoch = self.state.epoch + 1
        for epoch in range(start_epoch, self.settings.epochs + 1):
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_losses, mean_weights = self.train_epoch(epoch)
            if self.scheduler is not None:
                self.scheduler.step()
            metrics = evaluate(self.model, self.val_loader, self.tasks, self.device)
            seconds = time.perf_counter() - started
            self.state.epoch = epoch
            self.state.last_metrics = metrics
            improved = self._update_best(metrics, epoch)
            log.info(format_epoch_summary(epoch, self.settings.epochs, train_losses, metrics, seconds))
            self._record(epoch, lr, seconds, train_losses, mean_weights, metrics, improved)
            if self.settings.max_steps is not None and self.state.step >= self.settings.max_steps:
                break
        if self.run_dir is not None:
            self.weight_history.save_plot(self.run_dir / "weights.png")
        return self.state

    def _update_best(self, metrics: Mapping[str, Mapping[str, float]], epoch: int) -> bool:
        value = metrics[self.monitor_task][self.monitor_metric]
        best = self.state.best_value
        better = best is None or (value > best if self.monitor_higher else value < best)
        if better and math.isfinite(value):
            self.state.best_value = value
            self.state.best_epoch = epoch
            self.state.best_metrics = {t: dict(m) for t, m in metrics.items()}
            return True
        return False

    def _record(
        self,
        epoch: int,
        lr: float,
        seconds: float,
        train_losses: Mapping[str, float],
        mean_weights: Mapping[str, float],
        metrics: Mapping[str, Mapping[str, float]],
        improved: bool,
    ) -> None:
        if self.run_dir is None or self.metrics_log is None:
            return
        row: dict[str, Any] = {"epoch": epoch, "step": self.state.step, "lr": lr, "time_s": seconds}
        row["train/loss"] = sum(train_losses.values())
        row.update({f"train/{t}_loss": v for t, v in train_losses.items()})
        row.update({f"weight/{t}": v for t, v in mean_weights.items()})
        row.update(flatten_metrics(metrics))
        self.metrics_log.append(row)
        checkpoint = self.checkpoint_state()
        folder = self.run_dir / "checkpoints"
        save_checkpoint(folder / "last.pt", checkpoint)
        if improved:
            save_checkpoint(folder / "best.pt", checkpoint)

    # ----------------------------------------------------------------- state
    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue training exactly (tensors and plain values only)."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "weighting": self.weighting.state_dict(),
            "train_state": {
                "epoch": self.state.epoch,
                "step": self.state.step,
                "best_value": self.state.best_value,
                "best_epoch": self.state.best_epoch,
                "best_metrics": self.state.best_metrics,
                "last_metrics": self.state.last_metrics,
                "train_seconds": self.state.train_seconds,
                "train_images": self.state.train_images,
            },
            "rng": {"torch": torch.get_rng_state()},
            "tasks": self.task_names,
        }
        if torch.cuda.is_available():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        if self.checkpoint_extras is not None:
            state.update(self.checkpoint_extras())
        return state
