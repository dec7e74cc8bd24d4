"""The optimisers and learning-rate schedules ``optim.name`` / ``optim.scheduler`` choose from (name -> constructor)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from omegaconf import DictConfig

from mtl_cli.engine.schedule import PerStepSchedule, WarmupCosine

Optimizer = torch.optim.Optimizer
Scheduler = torch.optim.lr_scheduler.LRScheduler | PerStepSchedule

# Each takes the parameter groups and the ``optim`` section. Adam and AdamW run fused (one
# kernel over all parameters, on CPU and CUDA): the per-parameter loop costs several
# percent of a small model's step on a CPU.
OPTIMIZERS: dict[str, Callable[[Sequence[dict], DictConfig], Optimizer]] = {
    "adam": lambda groups, opt: torch.optim.Adam(groups, lr=opt.lr, weight_decay=opt.weight_decay, fused=True),
    "adamw": lambda groups, opt: torch.optim.AdamW(groups, lr=opt.lr, weight_decay=opt.weight_decay, fused=True),
    "sgd": lambda groups, opt: torch.optim.SGD(groups, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay),
}


def _total_steps(cfg: DictConfig, steps_per_epoch: int) -> int:
    """The optimiser steps the run will take (``trainer.max_steps`` caps them)."""
    total = cfg.trainer.epochs * steps_per_epoch
    if cfg.trainer.max_steps is not None:
        total = min(total, cfg.trainer.max_steps)
    return total


# Each takes the optimiser, the whole config and the optimiser steps per epoch. ``cosine``
# moves with every optimiser step (after ``optim.warmup_steps`` of linear warm-up); ``step``
# is stepped once per epoch.
SCHEDULERS: dict[str, Callable[[Optimizer, DictConfig, int], Scheduler | None]] = {
    "none": lambda optimizer, cfg, steps: None,
    "cosine": lambda optimizer, cfg, steps: PerStepSchedule(
        optimizer, WarmupCosine(_total_steps(cfg, steps), cfg.optim.warmup_steps)
    ),
    "step": lambda optimizer, cfg, steps: torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=cfg.optim.step_size, gamma=cfg.optim.gamma
    ),
}


def build_optimizer(cfg: DictConfig, groups: Sequence[dict]) -> Optimizer:
    """The optimiser ``optim.name`` names, over the given parameter groups."""
    return OPTIMIZERS[cfg.optim.name.value](groups, cfg.optim)


def build_scheduler(cfg: DictConfig, optimizer: Optimizer, steps_per_epoch: int) -> Scheduler | None:
    """The learning-rate schedule ``optim.scheduler`` names (``None`` for ``none``)."""
    return SCHEDULERS[cfg.optim.scheduler.value](optimizer, cfg, steps_per_epoch)
