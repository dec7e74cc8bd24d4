"""The optimisers and learning-rate schedules ``optim.name`` / ``optim.scheduler`` choose from (name -> constructor)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from omegaconf import DictConfig

Optimizer = torch.optim.Optimizer
Scheduler = torch.optim.lr_scheduler.LRScheduler

# Each takes the parameter groups and the ``optim`` section.
OPTIMIZERS: dict[str, Callable[[Sequence[dict], DictConfig], Optimizer]] = {
    "adam": lambda groups, opt: torch.optim.Adam(groups, lr=opt.lr, weight_decay=opt.weight_decay),
    "adamw": lambda groups, opt: torch.optim.AdamW(groups, lr=opt.lr, weight_decay=opt.weight_decay),
    "sgd": lambda groups, opt: torch.optim.SGD(groups, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay),
}

# Each takes the optimiser and the whole config; stepped once per epoch.
SCHEDULERS: dict[str, Callable[[Optimizer, DictConfig], Scheduler | None]] = {
    "none": lambda optimizer, cfg: None,
    "cosine": lambda optimizer, cfg: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.trainer.epochs),
    "step": lambda optimizer, cfg: torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=cfg.optim.step_size, gamma=cfg.optim.gamma
    ),
}


def build_optimizer(cfg: DictConfig, groups: Sequence[dict]) -> Optimizer:
    """The optimiser ``optim.name`` names, over the given parameter groups."""
    return OPTIMIZERS[cfg.optim.name.value](groups, cfg.optim)


def build_scheduler(cfg: DictConfig, optimizer: Optimizer) -> Scheduler | None:
    """The per-epoch learning-rate schedule ``optim.scheduler`` names (``None`` for ``none``)."""
    return SCHEDULERS[cfg.optim.scheduler.value](optimizer, cfg)
