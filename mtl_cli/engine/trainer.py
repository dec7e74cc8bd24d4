"""The training loop: one pass over the data per epoch, validation, records and checkpoints."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from mtl_cli.engine import distributed
from mtl_cli.engine.checkpoint import save_checkpoint
from mtl_cli.engine.evaluate import evaluate
from mtl_cli.engine.precision import Precision
from mtl_cli.engine.records import flatten_metrics, format_epoch_summary
from mtl_cli.engine.rng import capture_rng_state, restore_rng_state
from mtl_cli.engine.signals import StopOnSignal, TrainingInterrupted
from mtl_cli.engine.speed import memory_format
from mtl_cli.errors import UserError
from mtl_cli.models import MultiTaskModel
from mtl_cli.relation.learner import TaskRelation
from mtl_cli.tasks import Task
from mtl_cli.utils.files import MetricsLog
from mtl_cli.utils.metric_keys import split_metric_key
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
    history: list[dict[str, Any]] = field(default_factory=list)  # the metrics.csv rows so far

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> "TrainState":
        """The state saved in a checkpoint (keys this version does not know are ignored)."""
        return cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})


@dataclass
class EpochProgress:
    """The running sums of one epoch; saved when training stops in the middle of it."""

    epoch: int
    batches: int  # loader batches done
    steps: int  # optimiser steps done
    sums: Tensor  # [2, tasks]: running loss and weight sums
    first_bad_step: Tensor  # per task: the first step with a non-finite loss, -1 if none
    images: int = 0
    seconds: float = 0.0

    @classmethod
    def start(cls, epoch: int, num_tasks: int, device: torch.device) -> "EpochProgress":
        first_bad = torch.full((num_tasks,), -1, dtype=torch.long, device=device)
        return cls(epoch, 0, 0, torch.zeros(2, num_tasks, device=device), first_bad)

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any], device: torch.device) -> "EpochProgress":
        values = {f.name: saved[f.name] for f in fields(cls)}
        values["sums"] = values["sums"].to(device)
        values["first_bad_step"] = values["first_bad_step"].to(device)
        return cls(**values)


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
        self.stop = StopOnSignal()
        # Set by ``mtl_cli.engine.resume``: a partly done epoch to continue and the RNG state to
        # restore once the loader is positioned where the checkpoint was taken.
        self.resume_progress: EpochProgress | None = None
        self.resume_rng: dict[str, Any] | None = None
        self.monitor_task, self.monitor_metric, self.monitor_higher = self._resolve_monitor(settings.monitor)
        self.metrics_log = MetricsLog(run_dir / "metrics.csv") if run_dir else None
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
        self.weight_history = WeightHistory(self.run_dir, self.task_names)

    # ----------------------------------------------------------------- setup
    def _resolve_monitor(self, monitor: str) -> tuple[str, str, bool]:
        if monitor == "auto":
            task = self.tasks[0]
            metric = task.primary_metric
        else:
            task_name, metric = split_metric_key(monitor)
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

    def _epoch_batches(self, epoch: int, skip: int) -> Iterator[Mapping[str, Any]]:
        """The epoch's batches after the first ``skip`` (loaded, not trained on: same order as unbroken)."""
        batches = iter(self._epoch_loader(epoch))
        for _ in range(skip):
            next(batches)
        if self.resume_rng is not None:
            restore_rng_state(self.resume_rng)
            self.resume_rng = None
        return batches

    def _take_progress(self, epoch: int) -> EpochProgress:
        progress = self.resume_progress
        self.resume_progress = None
        if progress is not None and progress.epoch == epoch:
            return progress
        return EpochProgress.start(epoch, len(self.tasks), self.device)

    def train_epoch(self, epoch: int) -> tuple[dict[str, float], dict[str, float]]:
        """One pass over the training data; returns the mean loss and mean weight per task (over all ranks)."""
        self.model.train()
        if self.settings.freeze_batchnorm:
            distributed.freeze_batchnorm_(self.model)
        progress = self._take_progress(epoch)
        loss_sum, weight_sum = progress.sums[0], progress.sums[1]
        in_step = 0
        needs_features = self.weighting.needs_features
        shared = self.model.shared_parameters()
        shared_ids = {id(p) for p in shared}
        task_params = [p for p in self.model.parameters() if p.requires_grad and id(p) not in shared_ids]
        max_steps = self.settings.max_steps
        num_batches = len(self.train_loader)
        bar = tqdm(
            self._epoch_batches(epoch, progress.batches),
            total=num_batches,
            initial=progress.batches,
            desc=f"epoch {epoch}/{self.settings.epochs}",
            disable=None if self.settings.progress and self.ranks.is_main else True,  # None: only on a terminal
            leave=False,
            dynamic_ncols=True,
        )
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for batch in bar:
            progress.batches += 1
            in_step += 1
            step_now = in_step == self.settings.accumulate or progress.batches == num_batches
            losses, weights = self._forward_backward(
                batch, shared, needs_features, epoch, sync=step_now, task_params=task_params
            )
            detached = losses.detach()
            loss_sum += detached
            weight_sum += weights.detach()
            first_bad = progress.first_bad_step
            bad = ~torch.isfinite(detached) & (first_bad < 0)
            progress.first_bad_step = torch.where(bad, torch.full_like(first_bad, self.state.step), first_bad)
            progress.images += batch["image"].shape[0]
            if not step_now:
                continue
            self._optimizer_step(in_step)
            in_step = 0
            self.state.step += 1
            progress.steps += 1
            at_limit = max_steps is not None and self.state.step >= max_steps
            sync_point = progress.steps % self.settings.log_every_n_steps == 0 or at_limit
            if sync_point:
                self._check_finite(progress.first_bad_step, epoch)
                if self.ranks.is_main:
                    report = self.weighting.step_report(self.state.step)
                    self.weight_history.record(self.state.step, epoch, weights.tolist(), report)
                if self.settings.progress and self.ranks.is_main:
                    means = (loss_sum / progress.batches).tolist()
                    bar.set_postfix_str(
                        f"loss {sum(means):.3f} " + " ".join(f"{n} {v:.3f}" for n, v in zip(self.task_names, means))
                    )
            signum = self._stop_signal(sync_point)  # after this step's records, which the resumed run keeps
            if signum:
                self._check_finite(progress.first_bad_step, epoch)  # never save a diverged model
                progress.seconds += time.perf_counter() - start
                self._save_and_stop(signum, progress)
            if at_limit:
                break
        bar.close()
        self._check_finite(progress.first_bad_step, epoch)
        self.state.train_seconds += progress.seconds + time.perf_counter() - start
        self.state.train_images += progress.images * self.ranks.world_size  # every rank sees as many
        means = distributed.all_reduce_mean_(progress.sums / max(progress.batches, 1))
        self.weighting.epoch_end(means[0])
        if self.relation is not None:
            self.relation.epoch_end(epoch)
        return dict(zip(self.task_names, means[0].tolist())), dict(zip(self.task_names, means[1].tolist()))

    def _forward_backward(
        self,
        batch: Mapping[str, Any],
        shared: Sequence[nn.Parameter],
        needs_features: bool,
        epoch: int,
        sync: bool,
        task_params: Sequence[nn.Parameter] = (),
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
                task_losses = [self.precision.scale_gradients(loss.float()) for loss in batch_losses(preds)]
            losses = torch.stack(task_losses)
            if self.relation is not None:
                self.relation.before_backward(
                    self.state.step,
                    images,
                    losses,
                    lambda p: torch.stack(batch_losses(p)),
                    self.precision.grad_scale(),
                )
            ctx = StepContext(
                shared,
                features,
                self.state.step,
                epoch,
                task_losses,
                task_params,
                grad_scale=self.precision.grad_scale() if per_task else None,
            )
            weights = self.weighting.backward(losses, ctx)
            if self.relation is not None:
                self.relation.after_backward(self.precision.grad_scale())
        # A copy: some methods return a view of parameters the optimiser step then updates.
        return losses, weights.detach().clone()

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
    ) -> list[Tensor]:
        """Every task's loss on one batch, in task order."""
        return [task.loss(preds[task.name], targets[task.name], masks.get(task.name)) for task in self.tasks]

    def _stop_signal(self, sync_point: bool) -> int:
        """The stop signal to act on after this step, 0 for none.

        In one process a signal is acted on at once. Under DDP all ranks must stop after the
        same step, so they agree (a max over ranks) at sync points only: every
        ``log_every_n_steps`` steps and at the end of an epoch, never adding a collective to
        the other steps.
        """
        if not self.ranks.distributed:
            return self.stop.signum or 0
        if not sync_point:
            return 0
        flag = torch.tensor([float(self.stop.signum or 0)], device=self.device)
        return int(distributed.all_reduce_max_(flag).item())

    def _save_and_stop(self, signum: int, progress: EpochProgress | None) -> None:
        """After the step during which a stop signal came: save ``last.pt`` (rank 0) and raise."""
        checkpoint = None
        if self.run_dir is not None:
            checkpoint = self.run_dir / "checkpoints" / "last.pt"
            if progress is not None:  # mid-epoch: the end-of-epoch last.pt would lose this epoch's steps
                state = self.checkpoint_state()
                state["epoch_progress"] = asdict(progress)
                save_checkpoint(checkpoint, state)
            elif not checkpoint.is_file():
                checkpoint = None
        where = f"after epoch {self.state.epoch}" if progress is None else f"in epoch {progress.epoch}"
        raise TrainingInterrupted(signum, checkpoint, f"{where} (step {self.state.step})")

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
        """Train until ``epochs`` (or ``max_steps``), validating and checkpointing every epoch.

        SIGINT/SIGTERM stop training after the current step with a checkpoint saved and
        ``TrainingInterrupted`` raised.
        """
        with self.stop:
            return self._fit()

    def _fit(self) -> TrainState:
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
            signum = self._stop_signal(sync_point=True)
            if signum:
                self._save_and_stop(signum, None)
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
        self.state.history.append(row)
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
            "train_state": asdict(self.state),
            "scaler": self.precision.state_dict(),
            "rng": capture_rng_state(),
            "tasks": self.task_names,
        }
        if self.relation is not None:
            state["relation"] = self.relation.state_dict()
        if self.checkpoint_extras is not None:
            state.update(self.checkpoint_extras())
        return state
