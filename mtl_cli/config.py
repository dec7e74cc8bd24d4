"""Structured-config schema, task-combination registration and validation.

Hydra composes the YAML files under ``mtl_cli/configs`` on top of the dataclasses below,
so every override is type-checked (``trainer.epochs=abc`` fails at composition time).
``validate`` then checks what types alone cannot (value ranges, cross-references) and
returns a typed ``DictConfig`` that the rest of the library reads.
"""

from __future__ import annotations

import enum
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mtl_cli.errors import UserError, one_line

CONFIG_DIR = Path(__file__).parent / "configs"

# Preferred order in which tasks are listed and stored; tasks not listed here follow
# alphabetically. ``task=seg+cls`` and ``task=cls+seg`` are the same run.
PREFERRED_TASK_ORDER = ("cls", "seg", "depth", "normals", "edges", "multilabel")


class Device(enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class OptimizerName(enum.Enum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class SchedulerName(enum.Enum):
    none = "none"
    cosine = "cosine"
    step = "step"


@dataclass
class TaskConfig:
    """One task: its kind (which loss, head and metrics) and its settings.

    ``num_classes`` and ``ignore_index`` left unset are taken from the dataset's
    ``data.tasks.<name>`` entry.
    """

    kind: str = "???"
    loss: str = "default"
    num_classes: Optional[int] = None
    ignore_index: Optional[int] = None
    head_channels: int = 64


@dataclass
class DataConfig:
    """Dataset selection; ``tasks`` holds the per-task facts the dataset provides."""

    name: str = "shapes"
    root: Optional[str] = None
    num_train: int = 4000
    num_val: int = 500
    image_size: int = 64
    seed: int = 0
    cache_dir: Optional[str] = None
    mean: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: List[float] = field(default_factory=lambda: [0.25, 0.25, 0.25])
    tasks: Dict[str, Dict[str, Any]] = field(default_factory=dict)


@dataclass
class BackboneConfig:
    """Shared feature extractor; ``pretrained`` is an optional local weights file."""

    name: str = "small_cnn"
    pretrained: Optional[str] = None
    width: int = 32


@dataclass
class ArchConfig:
    """How the tasks share the network."""

    name: str = "shared_layers"
    branch_at: Optional[str] = None


@dataclass
class OptimConfig:
    name: OptimizerName = OptimizerName.adam
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: SchedulerName = SchedulerName.cosine
    step_size: int = 10
    gamma: float = 0.1


@dataclass
class TrainerConfig:
    epochs: int = 3
    batch_size: int = 64
    device: Device = Device.auto
    seed: int = 0
    num_workers: int = 0
    max_steps: Optional[int] = None
    monitor: str = "auto"
    log_every_n_steps: int = 10
    vis_images: int = 4
    progress: bool = True


@dataclass
class LossConfig:
    """Static per-task loss weights; a task not named here has weight 1."""

    weights: Dict[str, float] = field(default_factory=dict)


@dataclass
class MTLConfig:
    """The whole run. ``tasks`` is filled by the ``task=`` config group."""

    tasks: Dict[str, TaskConfig] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    arch: ArchConfig = field(default_factory=ArchConfig)
    # How the task losses are combined: ``name`` plus that method's options, which are
    # typed by the method's own dataclass (mtl_cli/weighting) and checked in ``validate``.
    weighting: Dict[str, Any] = field(default_factory=lambda: {"name": "ew"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    loss: LossConfig = field(default_factory=LossConfig)


def known_task_names() -> list[str]:
    """The task names that have a YAML file in the ``task`` config group, in canonical order."""
    names = [p.stem for p in (CONFIG_DIR / "task").glob("*.yaml")]
    return sort_tasks(names)


def sort_tasks(names: list[str]) -> list[str]:
    """Sort task names into the canonical order."""
    rank = {name: i for i, name in enumerate(PREFERRED_TASK_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def canonical_task_choice(choice: str, known: list[str] | None = None) -> str:
    """Turn ``"seg+cls"`` into ``"cls+seg"``; raise ``UserError`` naming an unknown task."""
    known = known_task_names() if known is None else known
    names = [n.strip() for n in choice.split("+")]
    for name in names:
        if name not in known:
            raise UserError(
                f"unknown task '{name}' in task={choice}; known tasks: {', '.join(known)} "
                f"(join several with '+', e.g. task=cls+seg)"
            )
    if len(set(names)) != len(names):
        raise UserError(f"task={choice} names a task twice; name each task once")
    return "+".join(sort_tasks(names))


def register_configs() -> None:
    """Register the schema and every multi-task combination with Hydra's ConfigStore."""
    cs = ConfigStore.instance()
    cs.store(name="mtl_schema", node=MTLConfig)
    known = known_task_names()
    for k in range(2, len(known) + 1):
        for combo in itertools.combinations(known, k):
            cs.store(
                group="task",
                name="+".join(combo),
                node={"defaults": list(combo)},
                package="_global_",
            )


def _typed(cfg: DictConfig) -> DictConfig:
    schema = OmegaConf.structured(MTLConfig)
    try:
        merged = OmegaConf.merge(schema, cfg)
    except OmegaConfBaseException as exc:
        raise UserError(f"invalid config: {one_line(str(exc))}") from exc
    assert isinstance(merged, DictConfig)
    return merged


def validate(cfg: DictConfig) -> DictConfig:
    """Type-check ``cfg`` against the schema and check values; return the typed config.

    Raises ``UserError`` with one line naming the bad key and what is expected.
    """
    cfg = _typed(cfg)
    if not cfg.tasks:
        raise UserError("no task selected; choose one or more with task=cls+seg")
    task_names = list(cfg.tasks.keys())
    for name, task_cfg in cfg.tasks.items():
        if task_cfg.kind == "???":
            raise UserError(f"tasks.{name}.kind is not set; set it to one of the task kinds")
    for name, weight in cfg.loss.weights.items():
        if name not in cfg.tasks:
            raise UserError(
                f"loss.weights.{name} names a task that is not in task={'+'.join(task_names)}; "
                f"remove it or add the task"
            )
        if not math.isfinite(weight) or weight < 0:
            raise UserError(f"loss.weights.{name}={weight}: a loss weight must be a finite number >= 0")
    _check_weighting(cfg, task_names)
    trainer = cfg.trainer
    _positive("trainer.epochs", trainer.epochs)
    _positive("trainer.batch_size", trainer.batch_size)
    _positive("trainer.log_every_n_steps", trainer.log_every_n_steps)
    if trainer.num_workers < 0:
        raise UserError(f"trainer.num_workers={trainer.num_workers}: must be >= 0")
    if trainer.max_steps is not None:
        _positive("trainer.max_steps", trainer.max_steps)
    if trainer.vis_images < 0:
        raise UserError(f"trainer.vis_images={trainer.vis_images}: must be >= 0")
    data = cfg.data
    _positive("data.num_train", data.num_train)
    _positive("data.num_val", data.num_val)
    _positive("data.image_size", data.image_size)
    if len(data.mean) != 3 or len(data.std) != 3 or min(data.std) <= 0:
        raise UserError("data.mean and data.std must each hold 3 numbers, std > 0")
    if not cfg.optim.lr > 0:
        raise UserError(f"optim.lr={cfg.optim.lr}: the learning rate must be > 0")
    if cfg.optim.weight_decay < 0:
        raise UserError(f"optim.weight_decay={cfg.optim.weight_decay}: must be >= 0")
    return cfg


def _check_weighting(cfg: DictConfig, task_names: list[str]) -> None:
    from mtl_cli.weighting import check_static_weights, parse_options  # imports torch: only when validating

    name = str(cfg.weighting.name)
    parse_options(name, cfg.weighting)
    weights = task_weights(cfg)
    check_static_weights(name, task_names, [weights[t] for t in task_names])


def _positive(key: str, value: int) -> None:
    if value <= 0:
        raise UserError(f"{key}={value}: must be a positive integer")


def task_weights(cfg: DictConfig) -> dict[str, float]:
    """The static loss weight of every task (1 unless ``loss.weights.<task>`` says otherwise)."""
    return {name: float(cfg.loss.weights.get(name, 1.0)) for name in cfg.tasks}
