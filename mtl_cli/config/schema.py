"""The structured-config schema: the type and the default of every key.

The defaults live here and only here: a YAML file of a config group sets only what its
option changes (``optim/sgd.yaml`` sets ``name: sgd``, ``lr``, ``scheduler``, ...), so
``trainer/default.yaml`` is empty. Hydra composes the YAML files on top of these
dataclasses, so every override is type-checked (``trainer.epochs=abc`` fails at composition time).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from mtl_cli.loggers.config import LoggerConfig


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
    ``sources`` / ``sampling`` (``data=multi``): each task's own dataset config, laid over the
    other ``data.*`` keys, and how their batches are drawn (``longest``).
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
    sources: Dict[str, Any] = field(default_factory=dict)
    sampling: str = "longest"


@dataclass
class BackboneConfig:
    """Shared feature extractor and its initial weights.

    ``weights``: torchvision's published weights (``DEFAULT``, ``IMAGENET1K_V1``, ...), from the
    torch cache. ``pretrained``: a local state-dict file, which must match exactly unless
    ``allow_partial``.
    """

    name: str = "small_cnn"
    pretrained: Optional[str] = None
    width: int = 24
    weights: Optional[str] = None
    allow_partial: bool = False


@dataclass
class ArchConfig:
    """How the tasks share the network (``arch=<name>``; see README "Sharing architectures").

    ``branch_at`` (shared_layers, mmoe, grouped): the last shared stage, a name or an index;
    ``num_experts`` (mmoe); ``stitch_init`` (cross_stitch): the initial self weight of
    every cross-stitch unit (1.0 = independent columns); ``groups`` (grouped): the task
    groups (``[[cls,seg],[depth]]``), ``auto`` or ``from:<run dir>``; ``warmup_steps``
    (grouped, ``groups=auto``): the all-shared steps that measure the affinity.
    """

    name: str = "shared_layers"
    branch_at: Optional[str] = None
    num_experts: int = 4
    stitch_init: float = 0.9
    groups: Any = None
    warmup_steps: int = 50


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
            "__doc__": 'Task relationships (``relation=none|given|learned``; see README "Task relationships").',
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
    lr: float = 8e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: SchedulerName = SchedulerName.cosine  # cosine: per optimiser step, after the warm-up
    warmup_steps: int = 100  # cosine: optimiser steps of linear warm-up (at most a fifth of the run)
    step_size: int = 10
    gamma: float = 0.1


DEFAULT_PROGRESSIVE_RESIZE = (0.5, 0.625, 0.75, 0.875)
"""Epochs 1-4 train on inputs at these fractions of their size (32, 40, 48, 56 px of the 64 px scenes)."""


@dataclass
class TrainerConfig:
    """The training loop (``trainer.*``); ``configs/trainer/default.yaml`` changes none of these."""

    epochs: int = 5
    batch_size: int = 32
    device: Device = Device.auto  # auto | cpu | cuda
    seed: int = 0
    num_workers: int = 0
    max_steps: Optional[int] = None  # cap the number of optimiser steps (smoke tests)
    monitor: str = "auto"  # <task>.<metric> that picks best.pt; auto = the first task's main metric
    log_every_n_steps: int = 10
    vis_images: int = 4
    progress: bool = True
    # multi-GPU / multi-node (launch with torchrun; README "Multi-GPU and multi-node")
    devices: Optional[int] = None  # processes per node to expect (checked against torchrun); None = as launched
    backend: Backend = Backend.auto  # auto (nccl on GPU, gloo on CPU) | nccl | gloo
    batch_norm: BatchNormMode = BatchNormMode.per_rank  # per_rank | sync (SyncBatchNorm, GPU) | frozen
    # speed (README "Mixed precision and speed")
    precision: str = "32"  # 32 | bf16 | 16 (fp16 with a GradScaler, GPU only)
    compile: bool = False  # torch.compile the model for training
    channels_last: bool = True  # weights and images in channels-last layout (faster convolutions)
    accumulate: int = 1  # optimiser step every K batches (gradient accumulation)
    # input scale of epochs 1, 2, ... (full size after the list; docs/distributed-and-speed.md "Progressive resizing")
    progressive_resize: List[float] = field(default_factory=lambda: list(DEFAULT_PROGRESSIVE_RESIZE))
    progressive_resize_min_size: int = 32  # no resized input is smaller than this on its shorter side
    grad_clip: Optional[float] = None  # max global gradient norm; None = no clipping
    prefetch_factor: int = 2  # batches each DataLoader worker loads ahead (num_workers > 0)
    resume: Optional[str] = None  # run dir or checkpoint to continue from (give the run's own overrides too)


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


DEFAULT_WEIGHTING = "uw"
"""The weighting method of ``configs/train.yaml``'s defaults list (``weighting: uw``)."""


@dataclass
class MTLConfig:
    """The whole run. ``tasks`` is filled by the ``task=`` config group."""

    tasks: Dict[str, TaskConfig] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    arch: ArchConfig = field(default_factory=ArchConfig)
    # How the task losses are combined: ``name`` plus that method's options, which are
    # typed by the method's own dataclass (mtl_cli/weighting) and checked in ``validate``.
    weighting: Dict[str, Any] = field(default_factory=lambda: {"name": DEFAULT_WEIGHTING})
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    relation: RelationConfig = field(default_factory=RelationConfig)  # type: ignore[valid-type]
    sweep: SweepConfig = field(default_factory=SweepConfig)
    # Experiment trackers: ``logger=[csv,tensorboard,mlflow,wandb]`` (the configs/logger group) and
    # ``logger.<tracker>.<option>``; metrics.csv, summary.json and curves.png are always written.
    logger: LoggerConfig = field(default_factory=LoggerConfig)
