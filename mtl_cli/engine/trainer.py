"""The training loop: one pass over the data per epoch, validation, and callbacks at fixed points.

The loop itself does the per-step work (forward, losses, the weighting's backward, the
optimiser step with accumulation and clipping), tracks non-finite losses and the train
state, continues a resumed epoch where it stopped, and averages over ranks. Records,
checkpoints, signals and progress display are callbacks (``mtl_cli.engine.callbacks``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from mtl_cli.data.multi import own_rows
from mtl_cli.engine import distributed
from mtl_cli.engine.callbacks.base import Callback, EpochRecord, StepRecord
from mtl_cli.engine.divergence import PATIENCE, Diverged, DivergenceWatch
from mtl_cli.engine.evaluate import evaluate
from mtl_cli.engine.optim import Scheduler
from mtl_cli.engine.precision import Precision
from mtl_cli.engine.resolution import ProgressiveResize
from mtl_cli.engine.rng import capture_rng_state, restore_rng_state
from mtl_cli.engine.speed import memory_format
from mtl_cli.engine.state import EpochProgress, TrainState
from mtl_cli.errors import UserError
from mtl_cli.models import MultiTaskModel
from mtl_cli.relation.learner import TaskRelation
from mtl_cli.tasks import Task
from mtl_cli.utils.metric_keys import split_metric_key
from mtl_cli.weighting import StepContext, Weighting


@dataclass
class TrainerSettings:
    """The loop's knobs (a subset of ``trainer.*``)."""

    epochs: int
    seed: int
    max_steps: int | None = None
    log_every_n_steps: int = 10
    monitor: str = "auto"
    accumulate: int = 1
    grad_clip: float | None = None
    channels_last: bool = False
    freeze_batchnorm: bool = False
    progressive_resize: Sequence[float] = ()
    progressive_resize_min_size: int = 1


@dataclass
class Components:
    """What the loop trains and validates, as built from a config (``mtl_cli.engine.build``).

    ``train_model`` is what the training forward calls (the model wrapped in DDP and/or
    ``torch.compile``, see ``speed.training_module``); ``model`` itself is evaluated and
    checkpointed. ``train_loader`` is any sized iterable of batches (a benchmark may
    train on a list of batches).
    """

    tasks: list[Task]
    model: MultiTaskModel
    weighting: Weighting
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler | None
    train_loader: Iterable[Mapping[str, Any]]
    val_loader: Iterable[Mapping[str, Any]]
    device: torch.device
    train_model: nn.Module
    precision: Precision
    relation: TaskRelation | None = None


class Trainer:
    """Trains ``parts.model`` on ``parts.tasks`` with a weighting method, validating after every epoch.

    The per-step work is: forward, one loss per task, ``weighting.backward``, optimiser
    step. Host values are read only at log points (every ``log_every_n_steps`` steps and
    at ``max_steps``), where the callbacks' ``on_step_end`` runs, so the other steps never
    wait on the device. With ``settings.accumulate = K`` the optimiser steps once every K
    batches on the mean of their gradients. ``run_dir`` is where this rank writes records
    (``None`` for none); ``checkpoint_extras`` is added to every ``state_dict``.
    """

    def __init__(
        self,
        parts: Components,
        settings: TrainerSettings,
        callbacks: Sequence[Callback] = (),
        run_dir: Path | None = None,
        checkpoint_extras: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = parts.model
        self.train_model = parts.train_model
        self.precision = parts.precision
        self.tasks = list(parts.tasks)
        self.task_names = [t.name for t in self.tasks]
        self.weighting = parts.weighting
        self.optimizer = parts.optimizer
        self.scheduler = parts.scheduler
        self.train_loader = parts.train_loader
        self.val_loader = parts.val_loader
        self.device = parts.device
        self.relation = parts.relation
        self.settings = settings
        self.callbacks = list(callbacks)
        self.run_dir = run_dir
        self.checkpoint_extras = dict(checkpoint_extras or {})
        self.state = TrainState()
        self.stop_requested = 0  # a signal number: stop after the current step (see ``request_stop``)
        # Set by ``load_state_dict``: a partly done epoch to continue and the RNG state to
        # restore once the loader is positioned where the checkpoint was taken.
        self._resume_progress: EpochProgress | None = None
        self._resume_rng: dict[str, Any] | None = None
        self.monitor_task, self.monitor_metric, self.monitor_higher = self._resolve_monitor(settings.monitor)
        self.divergence = DivergenceWatch(self.task_names, distributed.all_reduce_mean_)
        self._setup_steps()

    def _setup_steps(self) -> None:
        """What the optimiser step needs: parameter lists and, under DDP, who averages what."""
        self.memory_format = memory_format(self.settings.channels_last)
        self.resized_to: tuple[int, int] | None = None  # the latest batch's input size, if resized
        self.resize = ProgressiveResize.for_tasks(
            self.settings.progressive_resize, self.tasks, self.settings.progressive_resize_min_size
        )
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
    def _epoch_loader(self, epoch: int) -> Iterable[Mapping[str, Any]]:
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
        if self._resume_rng is not None:
            restore_rng_state(self._resume_rng)
            self._resume_rng = None
        return batches

    def _take_progress(self, epoch: int) -> EpochProgress:
        progress = self._resume_progress
        self._resume_progress = None
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
        num_batches = len(self.train_loader)  # type: ignore[arg-type]
        # Only callbacks that use log points get a StepRecord (whose values are read from the device).
        step_callbacks = [cb for cb in self.callbacks if type(cb).on_step_end is not Callback.on_step_end]
        batches = self._epoch_batches(epoch, progress.batches)
        detached: Tensor | None = None  # the latest batch's losses
        for callback in self.callbacks:
            callback.on_epoch_start(self, epoch, progress.batches)
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for batch in batches:
            progress.batches += 1
            in_step += 1
            step_now = in_step == self.settings.accumulate or progress.batches == num_batches
            losses, weights = self._forward_backward(
                batch, shared, needs_features, epoch, sync=step_now, task_params=task_params
            )
            detached = losses.detach()
            self.divergence.start(detached)
            loss_sum += detached
            weight_sum += weights.detach()
            first_bad = progress.first_bad_step
            bad = ~torch.isfinite(detached) & (first_bad < 0)
            # Numbered as metrics.csv numbers steps: the batch belongs to the step that ends at state.step + 1.
            progress.first_bad_step = torch.where(bad, torch.full_like(first_bad, self.state.step + 1), first_bad)
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
                self._check_divergence(detached, epoch, epoch_end=False)
                if step_callbacks:
                    record = self._step_record(epoch, progress, weights, progress.seconds + time.perf_counter() - start)
                    for callback in step_callbacks:
                        callback.on_step_end(self, record)
            signum = self._agreed_stop(sync_point)  # after this step's records, which the resumed run keeps
            if signum:
                self._check_finite(progress.first_bad_step, epoch)  # never save a diverged model
                progress.seconds += time.perf_counter() - start
                self._stop(signum, progress)
            if at_limit:
                break
        self._check_finite(progress.first_bad_step, epoch)
        self._check_divergence(detached, epoch, epoch_end=True)
        self.state.train_seconds += progress.seconds + time.perf_counter() - start
        self.state.train_images += progress.images * self.ranks.world_size  # every rank sees as many
        means = distributed.all_reduce_mean_(progress.sums / max(progress.batches, 1))
        self.weighting.epoch_end(means[0])
        for callback in self.callbacks:
            callback.on_train_epoch_end(self, epoch)
        return dict(zip(self.task_names, means[0].tolist())), dict(zip(self.task_names, means[1].tolist()))

    def _step_record(self, epoch: int, progress: EpochProgress, weights: Tensor, seconds: float) -> StepRecord:
        """The log point after the latest step (reads the running sums and weights from the device)."""
        report = self.weighting.step_report(self.state.step)
        images = progress.images * self.ranks.world_size
        return StepRecord(
            step=self.state.step,
            epoch=epoch,
            batches=progress.batches,
            losses=dict(zip(self.task_names, (progress.sums[0] / progress.batches).tolist())),
            weights=dict(zip(self.task_names, weights.tolist())),
            report=report,
            lr=self.optimizer.param_groups[0]["lr"],
            seconds=seconds,
            images_per_s=images / seconds if seconds > 0 else None,
        )

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
        label_size: tuple[int, int] | None = None
        self.resized_to = None
        scale = self.resize.scale(epoch)
        if scale != 1.0:
            resized = self.resize.resize(images, scale)
            if resized is not images:
                label_size = (images.shape[-2], images.shape[-1])
                images = resized.contiguous(memory_format=self.memory_format)
                self.resized_to = (images.shape[-2], images.shape[-1])
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
                batch_losses = functools.partial(self._task_losses, targets=targets, masks=masks, size=label_size)
                slices = batch.get("slices")  # data=multi: each task's loss on its own batch's rows
                if slices is not None:
                    batch_losses = functools.partial(_on_own_rows, batch_losses, slices)
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
        self,
        preds: Mapping[str, Tensor],
        targets: Mapping[str, Tensor],
        masks: Mapping[str, Tensor],
        size: tuple[int, int] | None = None,
    ) -> list[Tensor]:
        """Every task's loss on one batch, in task order (outputs for resized inputs brought to label ``size``)."""
        if size is not None:
            preds = {task.name: task.prediction_at(preds[task.name], size) for task in self.tasks}
        return [task.loss(preds[task.name], targets[task.name], masks.get(task.name)) for task in self.tasks]

    # ----------------------------------------------------------------- stopping
    def request_stop(self, signum: int) -> None:
        """Stop after the current step, as if on signal ``signum`` (what a stop-signal handler calls)."""
        self.stop_requested = signum

    def _agreed_stop(self, sync_point: bool) -> int:
        """The stop request to act on after this step, 0 for none.

        In one process a request is acted on at once. Under DDP all ranks must stop after
        the same step, so they agree (a max over ranks) at sync points only: every
        ``log_every_n_steps`` steps and at the end of an epoch, never adding a collective to
        the other steps.
        """
        if not self.ranks.distributed:
            return self.stop_requested
        if not sync_point:
            return 0
        flag = torch.tensor([float(self.stop_requested)], device=self.device)
        return int(distributed.all_reduce_max_(flag).item())

    def _stop(self, signum: int, progress: EpochProgress | None) -> None:
        """Tell the callbacks (``SignalStop`` saves and raises ``TrainingInterrupted``)."""
        for callback in self.callbacks:
            callback.on_stop(self, signum, progress)

    def _kept_checkpoint(self) -> str:
        """The end of a stop message: the last good checkpoint, named only when it exists."""
        last = self.run_dir / "checkpoints" / "last.pt" if self.run_dir else None
        if last is not None and last.is_file():
            return f"the last good checkpoint {last} is kept"
        return "no checkpoint had been saved yet"

    def _check_finite(self, first_bad_step: Tensor, epoch: int) -> None:
        bad = first_bad_step.tolist()
        for name, step in zip(self.task_names, bad):
            if step >= 0:
                raise UserError(
                    f"the loss of task '{name}' became NaN/inf at step {step} (epoch {epoch}); training stopped, "
                    f"{self._kept_checkpoint()}; lower optim.lr or check the data"
                )

    def _check_divergence(self, losses: Tensor | None, epoch: int, epoch_end: bool) -> None:
        """Stop when a task's loss has stayed far above its first value (see ``DivergenceWatch``)."""
        found: Diverged | None = self.divergence.observe(losses, epoch_end) if losses is not None else None
        if found is None:
            return
        seen = f"at {found.points} log points in a row" if found.points >= PATIENCE else "at the end of the epoch"
        raise UserError(
            f"training diverged: the loss of task '{found.task}' is {found.loss:.3g}, over 100x its first value "
            f"{found.first:.3g}, {seen} (step {self.state.step}, epoch {epoch}); training stopped, "
            f"{self._kept_checkpoint()}; lower optim.lr"
        )

    # ----------------------------------------------------------------- the loop
    def fit(self) -> TrainState:
        """Train until ``epochs`` (or ``max_steps``), validating every epoch; the callbacks record and checkpoint."""
        try:
            for callback in self.callbacks:
                callback.on_fit_start(self)
            self._fit()
        except BaseException as exc:
            for callback in reversed(self.callbacks):
                callback.on_exception(self, exc)
            raise
        for callback in reversed(self.callbacks):
            callback.on_fit_end(self)
        return self.state

    def end_run(self, summary: Mapping[str, Any]) -> None:
        """Tell the callbacks (in reverse list order) that the run's final records are written."""
        for callback in reversed(self.callbacks):
            callback.on_run_end(self, summary)

    def _steps_done(self) -> bool:
        """Whether ``max_steps`` optimiser steps are done (a resumed run may start there)."""
        return self.settings.max_steps is not None and self.state.step >= self.settings.max_steps

    def _fit(self) -> None:
        if self._steps_done():  # resumed from a checkpoint taken at max_steps: nothing left to train
            return
        start_epoch = self.state.epoch + 1
        for epoch in range(start_epoch, self.settings.epochs + 1):
            started = time.perf_counter()
            images, train_seconds = self.state.train_images, self.state.train_seconds
            train_losses, mean_weights = self.train_epoch(epoch)
            lr = self.optimizer.param_groups[0]["lr"]  # at the epoch's end: the same after a mid-epoch resume
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
            trained_for = self.state.train_seconds - train_seconds
            record = EpochRecord(
                epoch=epoch,
                step=self.state.step,
                losses=train_losses,
                weights=mean_weights,
                lr=lr,
                metrics=metrics,
                seconds=seconds,
                images_per_s=(self.state.train_images - images) / trained_for if trained_for > 0 else None,
                improved=improved,
            )
            for callback in self.callbacks:
                callback.on_epoch_end(self, record)
            signum = self._agreed_stop(sync_point=True)
            if signum:
                self._stop(signum, None)
            if self._steps_done():
                break

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

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly (tensors and plain values only): a checkpoint."""
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
        callbacks = {cb.key: cb.state_dict() for cb in self.callbacks}
        callbacks = {key: value for key, value in callbacks.items() if value is not None}
        if callbacks:
            state["callbacks"] = callbacks
        state.update(self.checkpoint_extras)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (a ``state_dict``, also one saved in the middle of an epoch).

        Raises ``RuntimeError``, ``KeyError`` or ``ValueError`` when it does not fit.
        """
        self.model.load_state_dict(state["model"])
        self.weighting.load_state_dict(state["weighting"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.precision.load_state_dict(state.get("scaler"))
        if self.relation is not None and "relation" in state:
            self.relation.load_state_dict(state["relation"])
        self.state = TrainState.from_dict(state["train_state"])
        progress = state.get("epoch_progress")
        self._resume_progress = EpochProgress.from_dict(progress, self.device) if progress else None
        self._resume_rng = state["rng"]
        saved = state.get("callbacks", {})
        for callback in self.callbacks:
            if callback.key in saved:
                callback.load_state_dict(saved[callback.key])


def _on_own_rows(
    losses: Callable[[Mapping[str, Tensor]], list[Tensor]], slices: Mapping[str, slice], preds: Mapping[str, Tensor]
) -> list[Tensor]:
    """``losses`` of each task's predictions on its own rows (a ``data=multi`` joined batch)."""
    return losses(own_rows(preds, slices))
