"""One training run from a validated config: build the trainer, train, write summary.json and the pictures."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from mtl_cli.commands import resume_command
from mtl_cli.data.multi import is_multi
from mtl_cli.engine import distributed
from mtl_cli.engine.build import build_trainer
from mtl_cli.engine.environment import peak_memory_mb
from mtl_cli.engine.evaluate import metric_directions, trivial_metrics
from mtl_cli.engine.grouping import resolve_groups
from mtl_cli.engine.provenance import environment_record
from mtl_cli.engine.records import config_record
from mtl_cli.engine.resume import ResumePoint
from mtl_cli.engine.signals import TrainingInterrupted
from mtl_cli.engine.trainer import Trainer
from mtl_cli.engine.visualize import save_prediction_grid
from mtl_cli.errors import UserError
from mtl_cli.loggers import RunInfo
from mtl_cli.utils.files import write_json
from mtl_cli.utils.process import process_identity

log = logging.getLogger("mtl_cli")


def train_run(
    cfg: DictConfig,
    run_dir: Path,
    overrides: Sequence[str] = (),
    command: str | None = None,
    tracking: RunInfo | None = None,
) -> dict[str, Any]:
    """Train the run ``cfg`` describes, writing every record into ``run_dir``; return the summary.

    ``overrides`` (the command-line overrides) and ``command`` (the command line) are recorded
    for reproduction. With ``trainer.resume`` set, training continues from that checkpoint.
    On SIGINT/SIGTERM the summary says ``interrupted`` and holds the command that resumes.
    Under torchrun every rank calls this: rank 0's ``run_dir`` is the run's, and only
    rank 0 writes records. ``tracking`` names the run for the experiment trackers (its sweep
    group and overrides); the trackers get the final records once summary.json is written.
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
        "process": process_identity(),  # lets mtl-report tell a run that died from one still running
    }

    def write_summary() -> None:
        if ranks.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json(run_dir / "summary.json", summary)

    write_summary()
    trainer: Trainer | None = None
    try:
        grouping = resolve_groups(cfg, run_dir if ranks.is_main else None)
        if grouping is not None:
            summary.update(grouping=grouping, config=config_record(cfg))
            write_summary()
        resume = ResumePoint.load(cfg) if cfg.trainer.resume else None
        trainer = build_trainer(cfg, run_dir, {"overrides": list(overrides)}, tracking)
        summary["metric_directions"] = metric_directions(trainer.tasks)
        summary["primary_metrics"] = {t.name: t.primary_metric for t in trainer.tasks}
        if resume is not None:
            summary["resumed_from"] = {"checkpoint": str(resume.path), "epoch": resume.epoch}
        write_summary()
        log.info(
            "run %s: tasks %s, %d train / %d val images, device %s",
            run_dir,
            "+".join(summary["tasks"]),
            len(trainer.train_loader.dataset),  # type: ignore[attr-defined]
            len(trainer.val_loader.dataset),  # type: ignore[attr-defined]
            trainer.device,
        )
        if resume is not None:
            resume.apply(trainer)
        state = trainer.fit()
        if ranks.is_main:
            trainer.model.save_records(run_dir)
            _save_pictures(cfg, trainer, run_dir)
        peak = torch.tensor(peak_memory_mb(trainer.device), dtype=torch.float64, device=trainer.device)
        distributed.all_reduce_max_(peak)
    except (TrainingInterrupted, KeyboardInterrupt) as caught:
        # A KeyboardInterrupt: a second Ctrl-C (which stops at once) or one before training started.
        exc = caught if isinstance(caught, TrainingInterrupted) else _stopped_at_once(run_dir)
        summary.update(status="interrupted", error=str(exc), resume_command=resume_command(overrides, run_dir))
        summary["wall_time_s"] = time.perf_counter() - started
        write_summary()
        if trainer is not None:
            trainer.end_run(summary)
        raise exc from None
    except BaseException as exc:
        summary.update(status="failed", error=str(exc) or exc.__class__.__name__)
        summary["wall_time_s"] = time.perf_counter() - started
        write_summary()
        if trainer is not None:
            trainer.end_run(summary)
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
        params=trainer.model.parameter_counts(),
        weighting={"name": cfg.weighting.name, **trainer.weighting.summary_extras()},
        peak_memory_mb=float(peak),  # the largest over ranks
        trivial_metrics=trivial_metrics(trainer.tasks, trainer.val_loader),
    )
    if trainer.relation is not None:
        summary["relations"] = trainer.relation.summary()
    write_summary()
    trainer.end_run(summary)
    log.info("done in %.1fs; records in %s", summary["wall_time_s"], run_dir)
    return summary


def _stopped_at_once(run_dir: Path) -> TrainingInterrupted:
    """A SIGINT that did not wait for the step to finish; the last checkpoint, if any, is where to resume."""
    last = run_dir / "checkpoints" / "last.pt"
    return TrainingInterrupted(signal.SIGINT, last if last.is_file() else None, "at once")


def _save_pictures(cfg: DictConfig, trainer: Trainer, run_dir: Path) -> None:
    """``val_predictions.png``: the first ``trainer.vis_images`` validation images, targets and predictions."""
    count = cfg.trainer.vis_images
    if count == 0 or is_multi(cfg.data):  # data=multi: no one batch holds every task's targets
        return
    loader = trainer.val_loader
    dataset = loader.dataset  # type: ignore[attr-defined]
    batch = loader.collate_fn([dataset[i] for i in range(min(count, len(dataset)))])  # type: ignore[attr-defined]
    images = batch["image"]
    trainer.model.eval()
    with torch.no_grad():
        preds = trainer.model(images.to(trainer.device))
    save_prediction_grid(
        run_dir / "val_predictions.png",
        images,
        {t.name: batch[t.name] for t in trainer.tasks},
        {name: pred.float().cpu() for name, pred in preds.items()},
        trainer.tasks,
        list(cfg.data.mean),
        list(cfg.data.std),
    )


__all__ = ["train_run"]
