"""The training loop: one pass over the data per epoch, validation, records and checkpoints."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from mtl_cli.engine import distributed
from mtl_cli.engine.checkpoint import save_checkpoint
from mtl_cli.engine.evaluate import evaluate
from mtl_cli.engine.precision import Precision
from mtl_cli.engine.records import MetricsLog, flatten_metrics, format_epoch_summary
from mtl_cli.engine.speed import memory_format
from mtl_cli.errors import UserError
from mtl_cli.models import MultiTaskModel
from mtl_cli.relation.learner import TaskRelation
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
    accumulate: int = 1
    grad_clip: float | None = None
    channels_last: bool = False
    freeze_batchnorm: bool = False


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

    ``train_model`` is what the training forward calls (the model wrapped in DDP and/or
    ``torch.compile``, see ``speed.training_module``); ``model`` itself is evaluated and
    checkpointed. With ``settings.accumulate = K`` the optimiser steps once every K
    batches on the mean of their gradients.
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
        train_model: nn.Module | None = None,
        precision: Precision | None = None,
        relation: TaskRelation | None = None,
    ) -> None:
        self.model = model
        self.train_model = model if train_model is None else train_model
        self.precision = Precision(device) if precision is None else precision
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
        self.relation = relation
        self.state = TrainState()
        self.monitor_task, self.monitor_metric, self.monitor_higher = self._resolve_monitor(settings.monitor)
        self.metrics_log = MetricsLog(run_dir / "metrics.csv") if run_dir else None
        self.weight_history = WeightHistory(run_dir, self.task_names)
        self._setup_steps()

    def _setup_steps(self) -> None:
        """What the optimiser step needs: parameter lists and, under DDP, who averages what."""
        self.memory_format = memory_format(self.settings.channels_last)
        self.ranks = distributed.current()
        self.ddp = self.train_model if isinstance(self.train_model, DistributedDataParallel) else None
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.weighting_params = [p for p in self.weighting.parameters() if p.requires_grad]
        # DDP averages the model's gradients in its backward; the trainer averages the
        # weighting's own parameters, or everything for per-task-gradient methods (which
        # run without DDP's hooks).
        per_task = self.weighting.per_task_gradients
        self.average_gradients = distributed.GradientAverager(self.params if per_task else self.weighting_params)
        distributed.broadcast_state_(self.weighting)

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
        """One pass over the training data; returns the mean loss and mean weight per task (over all ranks)."""
        self.model.train()
        if self.settings.freeze_batchnorm:
            distributed.freeze_batchnorm_(self.model)
        k = len(self.tasks)
        sums = torch.zeros(2, k, device=self.device)  # running loss and weight sums
        loss_sum, weight_sum = sums[0], sums[1]
        first_bad_step = torch.full((k,), -1, dtype=torch.long, device=self.device)
        steps = batches = in_step = 0
        needs_features = self.weighting.needs_features
        shared = self.model.shared_parameters()
        shared_ids = {id(p) for p in shared}
        task_params = [p for p in self.model.parameters() if p.requires_grad and id(p) not in shared_ids]
        max_steps = self.settings.max_steps
        loader = self._epoch_loader(epoch)
        num_batches = len(loader)
        bar = tqdm(
            loader,
            desc=f"epoch {epoch}/{self.settings.epochs}",
            disable=None if self.settings.progress and self.ranks.is_main else True,  # None: only on a terminal
            leave=False,
            dynamic_ncols=True,
        )
        start = time.perf_counter()
        images_seen = 0
        self.optimizer.zero_grad(set_to_none=True)
        for batch in bar:
            batches += 1
            in_step += 1
            step_now = in_step == self.settings.accumulate or batches == num_batches
            losses, weights = self._forward_backward(batch, shared, task_params, needs_features, epoch, sync=step_now)
            detached = losses.detach()
            loss_sum += detached
            weight_sum += weights.detach()
            bad = ~torch.isfinite(detached) & (first_bad_step < 0)
            first_bad_step = torch.where(bad, torch.full_like(first_bad_step, self.state.step), first_bad_step)
            images_seen += batch["image"].shape[0]
            if not step_now:
                continue
            self._optimizer_step(in_step)
            in_step = 0
            self.state.step += 1
            steps += 1
            at_limit = max_steps is not None and self.state.step >= max_steps
            if steps % self.settings.log_every_n_steps == 0 or at_limit:
                self._check_finite(first_bad_step, epoch)
                if self.ranks.is_main:
                    report = self.weighting.step_report(self.state.step)
                    self.weight_history.record(self.state.step, epoch, weights.tolist(), report)
                if self.settings.progress and self.ranks.is_main:
                    means = (loss_sum / batches).tolist()
                    bar.set_postfix_str(
                        f"loss {sum(means):.3f} " + " ".join(f"{n} {v:.3f}" for n, v in zip(self.task_names, means))
                    )
            if at_limit:
                break
        bar.close()
        self._check_finite(first_bad_step, epoch)
        self.state.train_seconds += time.perf_counter() - start
        self.state.train_images += images_seen * self.ranks.world_size  # every rank sees as many
        means = distributed.all_reduce_mean_(sums / max(batches, 1))
        self.weighting.epoch_end(means[0])
        if self.relation is not None:
            self.relation.epoch_end(epoch)
        return dict(zip(self.task_names, means[0].tolist())), dict(zip(self.task_names, means[1].tolist()))

    def _forward_backward(
        self,
        batch: Mapping[str, Any],
        shared: Sequence[nn.Parameter],
        task_params: Sequence[nn.Parameter],
        needs_features: bool,
        epoch: int,
        sync: bool,
    ) -> tuple[Tensor, Tensor]:
        """Forward, losses and the weighting's backward for one batch; returns (losses, weights).

        Under DDP the gradients are averaged over ranks only when ``sync`` (the last batch
        before an optimiser step), and never by DDP for per-task-gradient methods.
        """
        images = batch["image"].to(self.device, non_blocking=True, memory_format=self.memory_format)
        valid = batch.get("valid", {})
        per_task = self.weighting.per_task_gradients
        ddp_sync = self.ddp is None or (sync and not per_task)
        with contextlib.nullcontext() if ddp_sync else self.ddp.no_sync():  # type: ignore[union-attr]
            with self.precision.autocast():
                if needs_features:
                    preds, features = self.train_model(images, return_features=True)
                else:
                    preds, features = self.train_model(images), None
                targets = {task.name: task.to_device(batch[task.name], self.device) for task in self.tasks}
                masks = {name: mask.to(self.device) for name, mask in valid.items()}
                batch_losses = functools.partial(self._task_losses, targets=targets, masks=masks)
                task_losses = [loss.float() for loss in self._task_loss_list(preds, targets, masks)]
                losses = torch.stack(task_losses)
            if self.relation is not None:
                self.relation.before_backward(self.state.step, images, losses, batch_losses)
            ctx = StepContext(
                shared,
                features,
                self.state.step,
                epoch,
                grad_scale=self.precision.grad_scale() if per_task else None,
                task_losses=[self.precision.scale_gradients(loss) for loss in task_losses] if per_task else (),
                task_params=task_params,
            )
            weights = self.weighting.backward(self.precision.scale_gradients(losses), ctx)
            if self.relation is not None:
                self.relation.after_backward()
        return losses, weights

    def _optimizer_step(self, batches: int) -> None:
        """Average the gradients (over ranks, over ``batches`` accumulated batches), clip, step, zero."""
        self.average_gradients()
        if batches > 1:
            torch._foreach_div_([p.grad for p in self.params if p.grad is not None], batches)
        self.precision.unscale_(self.optimizer, self.weighting_params)
        if self.settings.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.settings.grad_clip)
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)

    def _task_losses(
        self, preds: Mapping[str, Tensor], targets: Mapping[str, Tensor], masks: Mapping[str, Tensor]
    ) -> Tensor:
        """Every task's loss on one batch, in task order."""
        return torch.stack(self._task_loss_list(preds, targets, masks))

    def _task_loss_list(
        self, preds: Mapping[str, Tensor], targets: Mapping[str, Tensor], masks: Mapping[str, Tensor]
    ) -> list[Tensor]:
        """The same losses as separate scalars (per-task backward passes from these visit one head each)."""
        return [task.loss(preds[task.name], targets[task.name], masks.get(task.name)) for task in self.tasks]

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
            distributed.broadcast_state_(self.model, buffers_only=True)  # rank 0's BatchNorm statistics
            metrics = evaluate(
                self.model, self.val_loader, self.tasks, self.device, self.precision.autocast, self.memory_format
            )
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
            "scaler": self.precision.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
            "tasks": self.task_names,
        }
        if torch.cuda.is_available():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        if self.checkpoint_extras is not None:
            state.update(self.checkpoint_extras())
        return state
