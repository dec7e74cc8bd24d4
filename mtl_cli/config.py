"""Structured-config schema, task-combination registration and validation.

Hydra composes the YAML files under ``mtl_cli/configs`` on top of the dataclasses below,
so every override is type-checked (``trainer.epochs=abc`` fails at composition time).
``validate`` then checks what types alone cannot (value ranges, cross-references) and
returns a typed ``DictConfig`` that the rest of the library reads.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mtl_cli.errors import UserError, one_line
from mtl_cli.relation.matrix import parse_relation_matrix

CONFIG_DIR = Path(__file__).parent / "configs"

# Preferred order in which tasks are listed and stored; tasks not listed here follow
# alphabetically. ``task=seg+cls`` and ``task=cls+seg`` are the same run.
PREFERRED_TASK_ORDER = ("cls", "seg", "depth", "normals", "edges", "multilabel")


class Device(enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Backend(enum.Enum):
    """torch.distributed backend; ``auto`` = nccl on CUDA, gloo on CPU."""

    auto = "auto"
    nccl = "nccl"
    gloo = "gloo"


class BatchNormMode(enum.Enum):
    """BatchNorm under DDP: per-rank batch statistics, synchronised statistics, or frozen statistics."""

    per_rank = "per_rank"
    sync = "sync"
    frozen = "frozen"


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
class AugmentConfig:
    """Training-time augmentation (validation data is never augmented).

    Geometric steps act identically on the image and every dense target: a random
    scale-crop (zoom in by a factor drawn uniformly from ``scale``; ``[1.0, 1.0]`` turns it
    off) and a horizontal flip with probability 1/2 when ``hflip``. Photometric jitter
    (``brightness``, ``contrast``, ``saturation``: factors in ``[1 - x, 1 + x]``; ``hue``:
    shift in ``[-x, x]``) touches the image only.
    """

    scale: List[float] = field(default_factory=lambda: [1.0, 1.0])
    hflip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0


@dataclass
class DataConfig:
    """Dataset selection; ``tasks`` holds the per-task facts the dataset provides.

    ``root``: the dataset's folder. ``num_train`` / ``num_val``: how many samples to
    generate (built-in data) or to use from the split (real data; ``null`` = all).
    ``train_split`` / ``val_split``: split names under ``root``. ``resize``: ``[H, W]`` every
    sample is resized to on loading (``null`` keeps the files' resolution). ``label_set``:
    Cityscapes' 7 or 19 classes. ``source`` / ``download``: where MultiMNIST takes its digits
    (``digits`` or ``mnist``) and whether MNIST may be downloaded. ``check_files``: how many
    samples per split are fully read and checked before training starts. ``mean`` / ``std``:
    the dataset's normalisation; with ``backbone.weights`` set they are replaced by the
    weights' own unless ``normalize_from_weights`` is false. ``augment``: training augmentation.
    """

    name: str = "shapes"
    root: Optional[str] = None
    num_train: Optional[int] = 4000
    num_val: Optional[int] = 500
    image_size: int = 64
    seed: int = 0
    cache_dir: Optional[str] = None
    mean: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: List[float] = field(default_factory=lambda: [0.25, 0.25, 0.25])
    train_split: str = "train"
    val_split: str = "val"
    resize: Optional[List[int]] = None
    label_set: Optional[int] = None
    source: Optional[str] = None
    download: bool = False
    check_files: int = 4
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    normalize_from_weights: bool = True
    tasks: Dict[str, Dict[str, Any]] = field(default_factory=dict)


@dataclass
class BackboneConfig:
    """Shared feature extractor and its initial weights.

    ``weights``: torchvision's published weights (``DEFAULT``, ``IMAGENET1K_V1``, ...), from the
    torch cache. ``pretrained``: a local state-dict file, which must match exactly unless
    ``allow_partial``.
    """

    name: str = "small_cnn"
    pretrained: Optional[str] = None
    width: int = 32
    weights: Optional[str] = None
    allow_partial: bool = False


@dataclass
class ArchConfig:
    """How the tasks share the network (``arch=<name>``; see README "Sharing architectures").

    ``branch_at`` (shared_layers, mmoe): the last shared stage, a name or an index;
    ``num_experts`` (mmoe); ``stitch_init`` (cross_stitch): the initial self weight of
    every cross-stitch unit (1.0 = independent columns).
    """

    name: str = "shared_layers"
    branch_at: Optional[str] = None
    num_experts: int = 4
    stitch_init: float = 0.9


class RelationName(enum.Enum):
    none = "none"
    given = "given"
    learned = "learned"


# ``relation.lambda`` is the name users type, but ``lambda`` is a Python keyword, so this
# dataclass is declared with ``type()`` and without a generated ``__init__``/``__repr__``/
# ``__eq__`` (their generated source would name the field). OmegaConf reads only its fields
# and defaults, so ``relation.lambda=abc`` is still rejected at composition time.
RelationConfig = dataclasses.dataclass(init=False, repr=False, eq=False)(
    type(
        "RelationConfig",
        (),
        {
            "__doc__": "Task relationships (``relation=none|given|learned``; see README \"Task relationships\").",
            "__module__": __name__,
            "__annotations__": {
                "name": RelationName,
                "lambda": float,
                "matrix": Any,
                "every_n_steps": int,
                "lookahead_lr": Optional[float],
            },
            "name": RelationName.none,
            "lambda": 0.0,
            "matrix": None,
            "every_n_steps": 10,
            "lookahead_lr": None,
        },
    )
)


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
    # scale-out and speed (README "Multi-GPU and multi-node", "Mixed precision and speed")
    devices: Optional[int] = None
    backend: Backend = Backend.auto
    batch_norm: BatchNormMode = BatchNormMode.per_rank
    precision: str = "32"
    compile: bool = False
    channels_last: bool = False
    accumulate: int = 1
    grad_clip: Optional[float] = None
    prefetch_factor: int = 2
    resume: Optional[str] = None


@dataclass
class LossConfig:
    """Static per-task loss weights; a task not named here has weight 1."""

    weights: Dict[str, float] = field(default_factory=dict)


@dataclass
class SweepConfig:
    """How runs are compared: what a run returns to a sweeper, and its single-task baselines.

    ``objective`` is ``monitor`` (the best value of ``trainer.monitor``), ``delta_m`` (the
    final metrics against the single-task runs in ``baselines``) or ``<task>.<metric>``
    (that final validation metric). ``baselines`` lists run or sweep directories holding
    single-task runs; the multirun report uses them as well.
    """

    objective: str = "monitor"
    baselines: List[str] = field(default_factory=list)


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
    relation: RelationConfig = field(default_factory=RelationConfig)  # type: ignore[valid-type]
    sweep: SweepConfig = field(default_factory=SweepConfig)


def known_task_names() -> list[str]:
    """The task names that have a YAML file in the ``task`` config group, in canonical order."""
    names = [p.stem for p in (CONFIG_DIR / "task").glob("*.yaml")]
    return sort_tasks(names)


def sort_tasks(names: list[str]) -> list[str]:
    """Sort task names into the canonical order."""
    rank = {name: i for i, name in enumerate(PREFERRED_TASK_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _yaml_task_keys(path: Path) -> set[str]:
    tasks = (yaml.safe_load(path.read_text()) or {}).get("tasks") or {}
    return set(tasks)


@functools.lru_cache(maxsize=1)
def task_families() -> dict[str, tuple[str, ...]]:
    """For each data config, the task files (canonical order) whose tasks it provides.

    A task file may define several tasks (e.g. ``attribute_groups``). Only tasks of one
    family can be trained together, so combinations are registered within families: this
    keeps ``--help`` and the ConfigStore small however many datasets bring their own tasks.
    """
    files = {p.stem: _yaml_task_keys(p) for p in (CONFIG_DIR / "task").glob("*.yaml")}
    families = {}
    for path in sorted((CONFIG_DIR / "data").glob("*.yaml")):
        provided = _yaml_task_keys(path)
        families[path.stem] = tuple(sort_tasks([f for f, names in files.items() if names and names <= provided]))
    return families


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
    families = task_families()
    if len(names) > 1 and not any(set(names) <= set(family) for family in families.values()):
        by_data = "; ".join(f"data={d}: {', '.join(f)}" for d, f in families.items() if f)
        raise UserError(f"task={choice}: no dataset provides all of these tasks; combine tasks of one dataset ({by_data})")
    return "+".join(sort_tasks(names))


def register_configs() -> None:
    """Register the schema and every multi-task combination within a task family."""
    cs = ConfigStore.instance()
    cs.store(name="mtl_schema", node=MTLConfig)
    combos: set[tuple[str, ...]] = set()
    for family in task_families().values():
        for k in range(2, len(family) + 1):
            combos.update(itertools.combinations(family, k))
    for combo in sorted(combos):
        cs.store(group="task", name="+".join(combo), node={"defaults": list(combo)}, package="_global_")


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
    _validate_speed(trainer)
    _validate_data(cfg.data)
    _follow_weights_normalization(cfg)
    if not cfg.optim.lr > 0:
        raise UserError(f"optim.lr={cfg.optim.lr}: the learning rate must be > 0")
    if cfg.optim.weight_decay < 0:
        raise UserError(f"optim.weight_decay={cfg.optim.weight_decay}: must be >= 0")
    _check_relation(cfg.relation, task_names)
    _check_objective(cfg.sweep.objective, task_names)
    return cfg


def _validate_data(data: DictConfig) -> None:
    for key in ("num_train", "num_val"):
        if data[key] is not None:
            _positive(f"data.{key}", data[key])
    _positive("data.image_size", data.image_size)
    if data.check_files < 0:
        raise UserError(f"data.check_files={data.check_files}: must be >= 0")
    if len(data.mean) != 3 or len(data.std) != 3 or min(data.std) <= 0:
        raise UserError("data.mean and data.std must each hold 3 numbers, std > 0")
    if data.resize is not None and (len(data.resize) != 2 or min(data.resize) <= 0):
        raise UserError(f"data.resize={list(data.resize)}: give [height, width], both positive, or null")
    aug = data.augment
    if len(aug.scale) != 2 or not 1.0 <= aug.scale[0] <= aug.scale[1]:
        raise UserError(f"data.augment.scale={list(aug.scale)}: give [min, max] with 1.0 <= min <= max")
    for key in ("brightness", "contrast", "saturation"):
        if not 0.0 <= aug[key] <= 1.0:
            raise UserError(f"data.augment.{key}={aug[key]}: must be in [0, 1]")
    if not 0.0 <= aug.hue <= 0.5:
        raise UserError(f"data.augment.hue={aug.hue}: must be in [0, 0.5]")


def _follow_weights_normalization(cfg: DictConfig) -> None:
    """With ``backbone.weights``, normalise images as those weights expect (unless the data config opts out)."""
    if not cfg.backbone.weights or not cfg.data.normalize_from_weights:
        return
    from mtl_cli.models.pretrained import weights_normalization  # imports torchvision: only when asked for

    cfg.data.mean, cfg.data.std = weights_normalization(cfg.backbone.name, cfg.backbone.weights)


PRECISIONS = ("32", "bf16", "16")


def _validate_speed(trainer: DictConfig) -> None:
    """Range checks of the scale-out and speed settings of ``trainer``."""
    if trainer.precision not in PRECISIONS:
        raise UserError(f"trainer.precision={trainer.precision}: choose one of {', '.join(PRECISIONS)}")
    _positive("trainer.accumulate", trainer.accumulate)
    _positive("trainer.prefetch_factor", trainer.prefetch_factor)
    if trainer.devices is not None:
        _positive("trainer.devices", trainer.devices)
    if trainer.grad_clip is not None and not (math.isfinite(trainer.grad_clip) and trainer.grad_clip > 0):
        raise UserError(f"trainer.grad_clip={trainer.grad_clip}: must be a number > 0 (or null for no clipping)")


def _check_relation(relation: DictConfig, task_names: list[str]) -> None:
    strength = relation["lambda"]
    if not math.isfinite(strength) or strength < 0:
        raise UserError(f"relation.lambda={strength}: the regulariser strength must be a finite number >= 0")
    _positive("relation.every_n_steps", relation.every_n_steps)
    if relation.lookahead_lr is not None and not (math.isfinite(relation.lookahead_lr) and relation.lookahead_lr > 0):
        raise UserError(f"relation.lookahead_lr={relation.lookahead_lr}: must be > 0 (or null for optim.lr)")
    if relation.name != RelationName.none:
        parse_relation_matrix(relation.matrix, task_names, required=relation.name == RelationName.given)


def _check_weighting(cfg: DictConfig, task_names: list[str]) -> None:
    from mtl_cli.weighting import check_static_weights, parse_options  # imports torch: only when validating

    name = str(cfg.weighting.name)
    parse_options(name, cfg.weighting)
    weights = task_weights(cfg)
    check_static_weights(name, task_names, [weights[t] for t in task_names])


def _check_objective(objective: str, task_names: list[str]) -> None:
    if objective in ("monitor", "delta_m"):
        return
    task, dot, metric = objective.partition(".")
    if not dot or not metric or task not in task_names:
        raise UserError(
            f"sweep.objective={objective}: use monitor, delta_m or <task>.<metric> with a task of this run "
            f"({', '.join(task_names)})"
        )


def _positive(key: str, value: int) -> None:
    if value <= 0:
        raise UserError(f"{key}={value}: must be a positive integer")


def task_weights(cfg: DictConfig) -> dict[str, float]:
    """The static loss weight of every task (1 unless ``loss.weights.<task>`` says otherwise)."""
    return {name: float(cfg.loss.weights.get(name, 1.0)) for name in cfg.tasks}
