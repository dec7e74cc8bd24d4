"""Rebuilding a trained model from its checkpoint, and the facts prediction and export need."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mtl_cli.engine.build import build_inference_model
from mtl_cli.engine.checkpoint import load_checkpoint
from mtl_cli.engine.resume import resolve_checkpoint, saved_config
from mtl_cli.errors import UserError, one_line
from mtl_cli.models import MultiTaskModel
from mtl_cli.tasks import Task

# Datasets whose images are generated at ``data.image_size`` squared.
SQUARE_DATASETS = ("shapes", "multimnist")


@dataclass
class TrainedModel:
    """A model rebuilt from a checkpoint's own config, in eval mode on the CPU."""

    path: Path
    cfg: DictConfig
    tasks: list[Task]
    model: MultiTaskModel

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The ``(H, W)`` the training images had, or None when they kept their files' sizes."""
        return training_input_size(self.cfg)

    @property
    def mean(self) -> list[float]:
        return [float(m) for m in self.cfg.data.mean]

    @property
    def std(self) -> list[float]:
        return [float(s) for s in self.cfg.data.std]

    def class_names(self, task: Task) -> list[str] | None:
        """``data.tasks.<task>.class_names`` when the dataset config names the classes."""
        return class_names(self.cfg, task)


def training_input_size(cfg: DictConfig) -> tuple[int, int] | None:
    """``data.resize``, else ``data.image_size`` squared for generated data, else None."""
    if cfg.data.resize is not None:
        return int(cfg.data.resize[0]), int(cfg.data.resize[1])
    if cfg.data.name in SQUARE_DATASETS:
        return int(cfg.data.image_size), int(cfg.data.image_size)
    return None


def class_names(cfg: DictConfig, task: Task) -> list[str] | None:
    """The class names of ``task`` from the dataset config; ``UserError`` if they do not fit."""
    names = task.settings.get("class_names")
    if names is None:
        return None
    names = [str(n) for n in (OmegaConf.to_container(names) if OmegaConf.is_config(names) else names)]
    expected = getattr(task, "num_classes", None)
    if expected is not None and len(names) != expected:
        raise UserError(
            f"data.tasks.{task.name}.class_names lists {len(names)} names for {expected} classes; give one per class"
        )
    return names


def load_trained_model(ckpt: str | Path, key: str = "ckpt") -> TrainedModel:
    """Load ``ckpt`` (a run directory or a .pt file) and rebuild its model with its own config."""
    path = resolve_checkpoint(ckpt, key=key)
    state = load_checkpoint(path)
    cfg = saved_config(state, path)
    cfg.backbone.pretrained = cfg.backbone.weights = None  # the weights come from the checkpoint
    tasks, model = build_inference_model(cfg, torch.device("cpu"))
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:
        raise UserError(
            f"checkpoint {path} does not fit the model built from its config: {one_line(str(exc))[:300]}"
        ) from exc
    model.eval()
    return TrainedModel(path, cfg, tasks, model)
