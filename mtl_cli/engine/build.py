"""The composition root: a validated config becomes tasks, data, model, weighting, optimiser and a Trainer.

``build_trainer`` is the one way a ready ``Trainer`` is made (``mtl-train``, the benchmarks
and the tests); ``build_evaluation`` makes only what evaluating a model needs (``mtl-eval``), and
``build_inference_model`` only the tasks and the model (``mtl-predict``, ``mtl-export``).
Under torchrun both join the process group: each rank gets its shard of the data, and
training wraps the model in DDP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from mtl_cli.config import task_weights
from mtl_cli.data import MultiTaskCollate, build_datasets, with_augment_seeds
from mtl_cli.data.multi import MultiTrainLoader, MultiValLoader, is_multi, provided_tasks, source_configs
from mtl_cli.engine import distributed
from mtl_cli.engine.baselines import load_baselines
from mtl_cli.engine.callbacks import (
    Callback,
    Checkpoints,
    Curves,
    EpochSummary,
    MetricsCSV,
    ProgressBar,
    RelationEpochEnd,
    SignalStop,
    TrackerLogging,
    WeightHistory,
)
from mtl_cli.engine.environment import seed_everything
from mtl_cli.engine.evaluate import metric_directions
from mtl_cli.engine.optim import build_optimizer, build_scheduler
from mtl_cli.engine.precision import Precision
from mtl_cli.engine.records import config_record
from mtl_cli.engine.speed import loader_options, memory_format, training_module
from mtl_cli.engine.trainer import Components, Trainer, TrainerSettings
from mtl_cli.loggers import RunInfo, build_loggers
from mtl_cli.models import MultiTaskModel, build_model
from mtl_cli.relation.learner import build_relation
from mtl_cli.tasks import Task, build_task
from mtl_cli.utils.mappings import flatten_dict
from mtl_cli.weighting import Weighting, build_weighting


def build_tasks(cfg: DictConfig) -> list[Task]:
    """The run's tasks, in the config's (canonical) order."""
    facts = provided_tasks(cfg.data, list(cfg.tasks.keys()))
    return [
        build_task(name, OmegaConf.to_container(task_cfg), facts.get(name))  # type: ignore[arg-type]
        for name, task_cfg in cfg.tasks.items()
    ]


def _datasets(cfg: DictConfig, tasks: list[Task]) -> tuple[Dataset, Dataset]:
    return build_datasets(cfg.data, [t.name for t in tasks], {t.name: {**t.settings, "kind": t.kind} for t in tasks})


def _task_datasets(cfg: DictConfig, tasks: list[Task]) -> dict[str, tuple[Dataset, Dataset]]:
    """``data=multi``: each task's (train, val) datasets from its own source."""
    sources = source_configs(cfg.data, [t.name for t in tasks])
    return {t.name: build_datasets(sources[t.name], [t.name], {t.name: {**t.settings, "kind": t.kind}}) for t in tasks}


def _val_loader(cfg: DictConfig, val_set: Dataset, collate: MultiTaskCollate, options: Mapping[str, Any]) -> DataLoader:
    """The validation loader: each rank its shard, in order."""
    return DataLoader(
        val_set,
        batch_size=cfg.trainer.batch_size,
        sampler=distributed.ShardSampler(len(val_set)),  # type: ignore[arg-type]
        collate_fn=collate,
        **options,
    )


def _train_loader(
    cfg: DictConfig, train_set: Dataset, collate: MultiTaskCollate, options: Mapping[str, Any]
) -> DataLoader:
    """The training loader: each rank its shard of a per-epoch permutation, augmentation seeds attached."""
    trainer_cfg = cfg.trainer
    sampler = distributed.train_sampler(train_set, trainer_cfg.seed)
    return DataLoader(
        train_set,
        batch_size=trainer_cfg.batch_size,
        sampler=with_augment_seeds(train_set, sampler, trainer_cfg.seed),
        drop_last=len(sampler) > trainer_cfg.batch_size,
        generator=torch.Generator(),  # reseeded every epoch; seeds the workers
        collate_fn=collate,
        **options,
    )


def _loaders(
    cfg: DictConfig, tasks: list[Task], options: Mapping[str, Any]
) -> tuple[DataLoader | MultiTrainLoader, DataLoader | MultiValLoader]:
    """The train and validation loaders; under ``data=multi`` one pair per task, joined."""
    if not is_multi(cfg.data):
        train_set, val_set = _datasets(cfg, tasks)
        collate = MultiTaskCollate(tasks)
        return _train_loader(cfg, train_set, collate, options), _val_loader(cfg, val_set, collate, options)
    per_task = _task_datasets(cfg, tasks)
    collates = {t.name: MultiTaskCollate([t]) for t in tasks}
    train = {n: _train_loader(cfg, sets[0], collates[n], options) for n, sets in per_task.items()}
    val = {n: _val_loader(cfg, sets[1], collates[n], options) for n, sets in per_task.items()}
    return MultiTrainLoader(train), MultiValLoader(val)


def build_weighting_method(cfg: DictConfig, tasks: list[Task], device: torch.device) -> Weighting:
    """The weighting method ``weighting.name`` names, with the static task weights."""
    weights = task_weights(cfg)
    hparams = OmegaConf.to_container(cfg.weighting, resolve=True)
    names = [t.name for t in tasks]
    method = build_weighting(cfg.weighting.name, names, [weights[n] for n in names], hparams)  # type: ignore[arg-type]
    return method.to(device)


def parameter_groups(model: MultiTaskModel, weighting: Weighting) -> list[dict[str, Any]]:
    """The model's parameters, then the weighting's learned ones (without weight decay) if any."""
    groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    extra = [p for p in weighting.parameters() if p.requires_grad]
    if extra:
        groups.append({"params": extra, "weight_decay": 0.0})
    return groups


def build_components(cfg: DictConfig) -> Components:
    """Everything the training loop trains, from a validated config (relation excluded: see ``build_trainer``)."""
    trainer_cfg = cfg.trainer
    _, device = distributed.setup(trainer_cfg.device.value, trainer_cfg.backend.value, trainer_cfg.devices)
    precision = Precision.from_config(trainer_cfg.precision, device)
    seed_everything(trainer_cfg.seed)
    tasks = build_tasks(cfg)
    options = loader_options(trainer_cfg.num_workers, trainer_cfg.prefetch_factor, device)
    train_loader, val_loader = _loaders(cfg, tasks, options)
    model = build_model(cfg, tasks).to(device)
    weighting = build_weighting_method(cfg, tasks, device)
    optimizer = build_optimizer(cfg, parameter_groups(model, weighting))
    scheduler = build_scheduler(cfg, optimizer, math.ceil(len(train_loader) / trainer_cfg.accumulate))
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
    """The loop's settings from ``trainer.*``."""
    t = cfg.trainer
    return TrainerSettings(
        epochs=t.epochs,
        seed=t.seed,
        max_steps=t.max_steps,
        log_every_n_steps=t.log_every_n_steps,
        monitor=t.monitor,
        accumulate=t.accumulate,
        grad_clip=t.grad_clip,
        channels_last=t.channels_last,
        freeze_batchnorm=t.batch_norm.value == "frozen",
        progressive_resize=tuple(t.progressive_resize),
        progressive_resize_min_size=t.progressive_resize_min_size,
    )


def build_callbacks(
    cfg: DictConfig, parts: Components, run_dir: Path | None, is_main: bool, tracking: RunInfo | None = None
) -> list[Callback]:
    """The loop's callbacks; ``run_dir`` (``None`` for none) receives the records, on the main rank only.

    ``curves.png`` is always drawn beside metrics.csv. The trackers ``logger=`` enables (checked
    on every rank: an unknown or uninstalled one is a ``UserError``) log on the main rank, as
    ``tracking`` describes the run (its name, sweep group and overrides; by default the run dir's).
    """
    callbacks: list[Callback] = [SignalStop(run_dir)]
    if parts.relation is not None:
        callbacks.append(RelationEpochEnd())
    if is_main:
        if cfg.trainer.progress:
            callbacks.append(ProgressBar())
        callbacks.append(WeightHistory(run_dir, [t.name for t in parts.tasks]))
    callbacks.append(EpochSummary())
    if run_dir is not None:
        callbacks += [
            MetricsCSV(run_dir / "metrics.csv"),
            Curves(run_dir / "curves.png"),  # after MetricsCSV, which adds the epoch's row
            Checkpoints(run_dir / "checkpoints"),
        ]
    loggers = build_loggers(OmegaConf.to_object(cfg.logger), is_main and run_dir is not None)  # type: ignore[arg-type]
    if loggers and run_dir is not None:
        run = tracking or RunInfo(run_dir=run_dir, run_name=run_dir.name)
        params = flatten_dict(config_record(cfg))
        baselines = load_baselines(cfg, metric_directions(parts.tasks))
        callbacks.append(TrackerLogging(loggers, replace(run, run_dir=run_dir), params, baselines))
    return callbacks


def build_trainer(
    cfg: DictConfig,
    run_dir: Path | None = None,
    checkpoint_extras: Mapping[str, Any] | None = None,
    tracking: RunInfo | None = None,
) -> Trainer:
    """A ready ``Trainer`` for the validated ``cfg``.

    Records (metrics.csv, weights.csv, checkpoints, relations) go to ``run_dir`` on the
    main rank (none when ``run_dir`` is ``None``). Every checkpoint holds the config (as
    YAML) and ``checkpoint_extras``. ``tracking`` names the run for the experiment trackers.
    """
    parts = build_components(cfg)
    ranks = distributed.current()
    records = run_dir if ranks.is_main else None
    parts.relation = build_relation(cfg, parts.model, records)
    extras = {"config": OmegaConf.to_yaml(cfg), **(checkpoint_extras or {})}
    callbacks = build_callbacks(cfg, parts, records, ranks.is_main, tracking)
    return Trainer(parts, trainer_settings(cfg), callbacks, run_dir=records, checkpoint_extras=extras)


@dataclass
class Evaluation:
    """What evaluating a model on one split needs."""

    tasks: list[Task]
    model: MultiTaskModel
    loader: DataLoader
    device: torch.device


def build_inference_model(cfg: DictConfig, device: torch.device) -> tuple[list[Task], MultiTaskModel]:
    """The tasks and the (untrained) model on ``device``, in the memory layout the weights were trained in.

    No data is built: this is what running a trained model needs (``mtl-eval``, ``mtl-predict``, ``mtl-export``).
    """
    tasks = build_tasks(cfg)
    model = build_model(cfg, tasks).to(device)
    model.to(memory_format=memory_format(cfg.trainer.channels_last))
    return tasks, model


def build_evaluation(cfg: DictConfig, split: str = "val") -> Evaluation:
    """The tasks, the (untrained) model and the loader of ``split`` (``val`` or ``train``, in order)."""
    trainer_cfg = cfg.trainer
    _, device = distributed.setup(trainer_cfg.device.value, trainer_cfg.backend.value, trainer_cfg.devices)
    seed_everything(trainer_cfg.seed)
    tasks, model = build_inference_model(cfg, device)
    if is_multi(cfg.data):
        options = loader_options(trainer_cfg.num_workers, trainer_cfg.prefetch_factor, device)
        sets = _task_datasets(cfg, tasks)
        index = 0 if split == "train" else 1
        loaders = {t.name: _val_loader(cfg, sets[t.name][index], MultiTaskCollate([t]), options) for t in tasks}
        return Evaluation(tasks, model, MultiValLoader(loaders), device)  # type: ignore[arg-type]
    train_set, val_set = _datasets(cfg, tasks)
    collate = MultiTaskCollate(tasks)
    if split == "train":
        loader = DataLoader(
            train_set,
            batch_size=trainer_cfg.batch_size,
            shuffle=False,
            collate_fn=collate,
            num_workers=trainer_cfg.num_workers,
        )
    else:
        options = loader_options(trainer_cfg.num_workers, trainer_cfg.prefetch_factor, device)
        loader = _val_loader(cfg, val_set, collate, options)
    return Evaluation(tasks, model, loader, device)
