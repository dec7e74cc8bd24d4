"""Which loggers exist, and building the chosen ones (each tracker is an optional extra)."""

from __future__ import annotations

import importlib
from typing import Any

from mtl_cli.errors import UserError
from mtl_cli.loggers.base import TrackerLogger
from mtl_cli.loggers.config import LoggerConfig
from mtl_cli.loggers.guard import GuardedLogger

# name (also the extra and the LoggerConfig field of its options) -> (library, module, class)
TRACKERS: dict[str, tuple[str, str, str]] = {
    "tensorboard": ("tensorboard", "mtl_cli.loggers.tensorboard", "TensorBoardLogger"),
    "mlflow": ("mlflow", "mtl_cli.loggers.mlflow_logger", "MlflowLogger"),
    "wandb": ("wandb", "mtl_cli.loggers.wandb_logger", "WandbLogger"),
}
KNOWN = ("csv", *TRACKERS)


def check_names(names: list[str]) -> list[str]:
    """The tracker names among ``names`` (``csv`` is written by the loop itself), in order, once each.

    Raises a one-line ``UserError`` for a name that is not a logger.
    """
    trackers: list[str] = []
    for name in names:
        if name not in KNOWN:
            raise UserError(f"unknown logger {name!r} in logger={list(names)}; known loggers: {', '.join(KNOWN)}")
        if name != "csv" and name not in trackers:
            trackers.append(name)
    return trackers


def logger_config(names: list[str], **options: Any) -> LoggerConfig:
    """A ``LoggerConfig`` with the trackers among ``names`` enabled (``options``: per-tracker options).

    Raises a one-line ``UserError`` for a name that is not a logger.
    """
    config = LoggerConfig(**options)
    for name in check_names(names):
        getattr(config, name).enabled = True
    return config


def tracker_class(name: str) -> type[TrackerLogger]:
    """The logger class of a tracker, importing its library; a one-line ``UserError`` when not installed."""
    library, module_name, class_name = TRACKERS[name]
    try:
        importlib.import_module(library)
    except ImportError as exc:
        raise UserError(
            f'logger={name} needs the {name} extra, which is not installed: pip install -e ".[{name}]"'
        ) from exc
    return getattr(importlib.import_module(module_name), class_name)


def build_loggers(config: LoggerConfig, is_main: bool) -> list[GuardedLogger]:
    """The trackers ``config`` enables, each guarded; none off the main process (rank 0 logs).

    Checks every name first (unknown name, missing extra: one-line ``UserError``) on every rank,
    so all ranks fail alike. Call ``start`` on each before logging.
    """
    classes = {name: tracker_class(name) for name in check_names(list(config.names))}
    if not is_main:
        return []
    return [GuardedLogger(cls(getattr(config, name))) for name, cls in classes.items()]
