"""One training run from a validated config: build everything, train, write the records."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from mtl_cli.commands import resume_command
from mtl_cli.config import task_weights
from mtl_cli.data import MultiTaskCollate, build_datasets, with_augment_seeds
from mtl_cli.engine import distributed
from mtl_cli.engine.environment import peak_memory_mb, seed_everything
from mtl_cli.engine.evaluate import metric_directions
from mtl_cli.engine.precision import Precision
from mtl_cli.engine.provenance import environment_record
from mtl_cli.engine.records import config_record, write_json
from mtl_cli.engine.resume import ResumePoint
from mtl_cli.engine.schedule import PerStepSchedule, WarmupCosine
from mtl_cli.engine.signals import TrainingInterrupted
from mtl_cli.engine.speed import loader_options, training_module
from mtl_cli.engine.trainer import Trainer, TrainerSettings
from mtl_cli.engine.visualize import save_prediction_grid
from mtl_cli.errors import UserError
from mtl_cli.models import MultiTaskModel, build_model
from mtl_cli.relation.learner import build_relation
from mtl_cli.tasks import Task, build_task
from mtl_cli.weighting import Weighting, build_weighting

log = logging.getLogger("mtl_cli")


@dataclass
class Components:
    """Everything a run is built from its config."""

    tasks: list[Task]
    model: MultiTaskModel
    weighting: Weighting
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | PerStepSchedule | None
    train_loader: DataLoader
    val_loader: DataLoader
    device: torch.device
    train_model: nn.Module  # the model as the training step calls it (DDP / compiled)
    precision: Precision


def build_tasks(cfg: DictConfig) -> list[Task]:
    """The run's tasks, in the config's (canonical) order."""
    return [
        build_task(name, OmegaConf.to_container(task_cfg), cfg.data.tasks.get(name))  # type: ignore[arg-type]
        for name, task_cfg in cfg.tasks.items()
    ]


def build_optimizer(cfg: DictConfig, params: Sequence[dict]) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD over the given parameter groups."""
    opt = cfg.optim
    name = opt.name.value
    if name == "adam":
        return torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)
    return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)


def build_scheduler(
    cfg: DictConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | PerStepSchedule | None:
    """The learning-rate schedule: ``cosine`` per optimiser step after ``optim.warmup_steps`` of
    linear warm-up, ``step`` per epoch, or none."""
    name = cfg.optim.scheduler.value
    if name == "cosine":
        total = cfg.trainer.epochs * steps_per_epoch
        if cfg.trainer.max_steps is not None:
            total = min(total, cfg.trainer.max_steps)
        return PerStepSchedule(optimizer, WarmupCosine(total, cfg.optim.warmup_steps))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.optim.step_size, gamma=cfg.optim.gamma)
    return None


def build_components(cfg: DictConfig) -> Components:
    """Build tasks, data, model, weighting, optimiser and scheduler from a validated config.

    Under torchrun this also joins the process group: each rank gets its shard of the
    data and the model wrapped in DDP.
    """
    trainer_cfg = cfg.trainer
    _, device = distributed.setup(trainer_cfg.device.value, trainer_cfg.backend.value, trainer_cfg.devices)
    precision = Precision.from_config(trainer_cfg.precision, device)
    seed_everything(trainer_cfg.seed)
    tasks = build_tasks(cfg)
    train_set, val_set = build_datasets(
        cfg.data, [t.name for t in tasks], {t.name: {**t.settings, "kind": t.kind} for t in tasks}
    )
    model = build_model(cfg, tasks).to(device)
    weights = task_weights(cfg)
    hparams = OmegaConf.to_container(cfg.weighting, resolve=True)
    weighting = build_weighting(cfg.weighting.name, [t.name for t in tasks], [weights[t.name] for t in tasks], hparams)
    weighting = weighting.to(device)
    groups = [{"params": list(model.parameters())}]
    extra = [p for p in weighting.parameters() if p.requires_grad]
    if extra:
        groups.append({"params": extra, "weight_decay": 0.0})
    optimizer = build_optimizer(cfg, groups)
    collate = MultiTaskCollate(tasks)
    options = loader_options(trainer_cfg.num_workers, trainer_cfg.prefetch_factor, device)
    sampler = distributed.train_sampler(train_set, trainer_cfg.seed)
    train_loader = DataLoader(
        train_set,
        batch_size=trainer_cfg.batch_size,
        sampler=with_augment_seeds(train_set, sampler, trainer_cfg.seed),
        drop_last=len(sampler) > trainer_cfg.batch_size,
        generator=torch.Generator(),  # reseeded every epoch; seeds the workers
        collate_fn=collate,
        **options,
    )
    scheduler = build_scheduler(cfg, optimizer, math.ceil(len(train_loader) / trainer_cfg.accumulate))
    val_loader = DataLoader(
        val_set,
        batch_size=trainer_cfg.batch_size,
        sampler=distributed.ShardSampler(len(val_set)),
        collate_fn=collate,
        **options,
    )
    train_model = training_module(
        model,
        device,
        channels_last=trainer_cfg.channels_last,
        batch_norm=trainer_cfg.batch_norm.value,
        compile=trainer_cfg.compile,
    )
    return Components(
        tasks, model, weighting, optimizer, scheduler, train_loader, val_loader, device, train_model, precision
    )


def trainer_settings(cfg: DictConfig) -> TrainerSettings:
    t = cfg.trainer
    return TrainerSettings(
        epochs=t.epochs,
        seed=t.seed,
        max_steps=t.max_steps,
        log_every_n_steps=t.log_every_n_steps,
        progress=t.progress,
        monitor=t.monitor,
        accumulate=t.accumulate,
        grad_clip=t.grad_clip,
        channels_last=t.channels_last,
        freeze_batchnorm=t.batch_norm.value == "frozen",
    )


def train_run(
    cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = (), command: str | None = None
) -> dict[str, Any]:
    """Train the run ``cfg`` describes, writing every record into ``run_dir``; return the summary.

    ``overrides`` (the command-line overrides) and ``command`` (the command line) are recorded
    for reproduction. With ``trainer.resume`` set, training continues from that checkpoint.
    On SIGINT/SIGTERM the summary says ``interrupted`` and holds the command that resumes.
    Under torchrun every rank calls this: rank 0's ``run_dir`` is the run's, and only
    rank 0 writes records.
    """
    started = time.perf_counter()
    trainer_cfg = cfg.trainer
    ranks, _ = distributed.setup(trainer_cfg.device.value, trainer_cfg.backend.value, trainer_cfg.devices)
    run_dir = Path(distributed.broadcast_object(str(run_dir)))
    if ranks.is_main and (run_dir / "summary.json").exists():  # behind the run-dir guard callback
        raise UserError(f"{run_dir} already holds an earlier run (summary.json); choose another run directory")
    summary: dict[str, Any] = {
        "status": "running",
        "tasks": list(cfg.tasks.keys()),
        "overrides": list(overrides),
        "command": command,
        "config": config_record(cfg),
        "environment": environment_record(),
        "world_size": ranks.world_size,
    }

    def write_summary() -> None:
        if ranks.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json(run_dir / "summary.json", summary)

    write_summary()
    try:
        resume = ResumePoint.load(cfg) if cfg.trainer.resume else None
        parts = build_components(cfg)
        summary["metric_directions"] = metric_directions(parts.tasks)
        summary["primary_metrics"] = {t.name: t.primary_metric for t in parts.tasks}
        if resume is not None:
            summary["resumed_from"] = {"checkpoint": str(resume.path), "epoch": resume.epoch}
        write_summary()
        log.info(
            "run %s: tasks %s, %d train / %d val images, device %s",
            run_dir,
            "+".join(summary["tasks"]),
            len(parts.train_loader.dataset),  # type: ignore[arg-type]
            len(parts.val_loader.dataset),  # type: ignore[arg-type]
            parts.device,
        )
        config_yaml = OmegaConf.to_yaml(cfg)
        relation = build_relation(cfg, parts.model, run_dir if ranks.is_main else None)
        trainer = Trainer(
            parts.model,
            parts.tasks,
            parts.weighting,
            parts.optimizer,
            parts.scheduler,
            parts.train_loader,
            parts.val_loader,
            parts.device,
            trainer_settings(cfg),
            run_dir=run_dir if ranks.is_main else None,
            checkpoint_extras=lambda: {"config": config_yaml, "overrides": list(overrides)},
            train_model=parts.train_model,
            precision=parts.precision,
            relation=relation,
        )
        if resume is not None:
            resume.apply(trainer)
        state = trainer.fit()
        if ranks.is_main:
            parts.model.save_records(run_dir)
            _save_pictures(cfg, parts, run_dir)
        peak = torch.tensor(peak_memory_mb(parts.device), dtype=torch.float64, device=parts.device)
        distributed.all_reduce_max_(peak)
    except TrainingInterrupted as exc:
        summary.update(status="interrupted", error=str(exc), resume_command=resume_command(overrides, run_dir))
        summary["wall_time_s"] = time.perf_counter() - started
        write_summary()
        raise
    except BaseException as exc:
        summary.update(status="failed", error=str(exc) or exc.__class__.__name__)
        summary["wall_time_s"] = time.perf_counter() - started
        write_summary()
        raise
    summary.update(
        status="completed",
        metrics=state.last_metrics,
        best_metrics=state.best_metrics,
        best_epoch=state.best_epoch,
        monitor=f"{trainer.monitor_task}.{trainer.monitor_metric}",
        epochs=state.epoch,
        steps=state.step,
        wall_time_s=time.perf_counter() - started,
        train_images_per_s=state.train_images / state.train_seconds if state.train_seconds else None,
        params=parts.model.parameter_counts(),
        weighting={"name": cfg.weighting.name, **parts.weighting.summary_extras()},
        peak_memory_mb=float(peak),  # the largest over ranks
    )
    if relation is not None:
        summary["relations"] = relation.summary()
    write_summary()
    log.info("done in %.1fs; records in %s", summary["wall_time_s"], run_dir)
    return summary


def _save_pictures(cfg: DictConfig, parts: Components, run_dir: Path) -> None:
    count = cfg.trainer.vis_images
    if count == 0:
        return
    dataset = parts.val_loader.dataset
    batch = parts.val_loader.collate_fn([dataset[i] for i in range(min(count, len(dataset)))])  # type: ignore[arg-type]
    images = batch["image"]
    parts.model.eval()
    with torch.no_grad():
        preds = parts.model(images.to(parts.device))
    save_prediction_grid(
        run_dir / "val_predictions.png",
        images,
        {t.name: batch[t.name] for t in parts.tasks},
        {name: pred.float().cpu() for name, pred in preds.items()},
        parts.tasks,
        list(cfg.data.mean),
        list(cfg.data.std),
    )


__all__ = ["Components", "build_components", "train_run"]
