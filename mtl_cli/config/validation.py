"""``validate``: the checks types alone cannot express (value ranges, cross-references).

It returns a typed ``DictConfig`` that the rest of the library reads; every problem is a
``UserError`` with one line naming the bad key and what is expected.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mtl_cli.config.schema import MTLConfig, RelationName
from mtl_cli.data.memory import check_generated_data_fits
from mtl_cli.errors import UserError, one_line
from mtl_cli.relation.matrix import parse_relation_matrix
from mtl_cli.utils.metric_keys import split_metric_key


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
    _check_progressive_resize(list(trainer.progressive_resize))
    _positive("trainer.progressive_resize_min_size", trainer.progressive_resize_min_size)
    _validate_data(cfg.data)
    _follow_weights_normalization(cfg)
    _validate_optim(cfg.optim)
    _positive("backbone.width", cfg.backbone.width)
    _check_relation(cfg.relation, task_names)
    _check_objective(cfg.sweep.objective, task_names)
    _check_finite_numbers(cfg)  # after the checks above, whose messages say more
    return cfg


def _check_finite_numbers(node: Any, name: str = "") -> None:
    """No setting may be NaN or infinite (``optim.lr=inf``, ``arch.stitch_init=nan``, a list entry)."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        for key, value in node.items():
            _check_finite_numbers(value, f"{name}.{key}" if name else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check_finite_numbers(value, f"{name}[{index}]")
    elif isinstance(node, float) and not math.isfinite(node):
        raise UserError(f"{name}={node}: must be a finite number")


def _validate_optim(optim: DictConfig) -> None:
    """The optimiser's numbers: finite, in range (``inf`` would train to NaN at once)."""
    if not (math.isfinite(optim.lr) and optim.lr > 0):
        raise UserError(f"optim.lr={optim.lr}: the learning rate must be a finite number > 0")
    if not (math.isfinite(optim.weight_decay) and optim.weight_decay >= 0):
        raise UserError(f"optim.weight_decay={optim.weight_decay}: must be a finite number >= 0")
    if not 0.0 <= optim.momentum < 1.0:
        raise UserError(f"optim.momentum={optim.momentum}: must be in [0, 1)")
    if not (math.isfinite(optim.gamma) and optim.gamma > 0):
        raise UserError(f"optim.gamma={optim.gamma}: the step factor must be a finite number > 0")
    _positive("optim.step_size", optim.step_size)
    if optim.warmup_steps < 0:
        raise UserError(f"optim.warmup_steps={optim.warmup_steps}: must be >= 0")


# Built-in generated data (shapes, multimnist) is rendered at data.image_size pixels per side.
IMAGE_SIZE_RANGE = (8, 2048)


def _validate_data(data: DictConfig) -> None:
    for key in ("num_train", "num_val"):
        if data[key] is not None:
            _positive(f"data.{key}", data[key])
    low, high = IMAGE_SIZE_RANGE
    if not low <= data.image_size <= high:
        raise UserError(f"data.image_size={data.image_size}: must be between {low} and {high} pixels")
    check_generated_data_fits(data)
    if (
        data.cache_dir is not None
        and Path(data.cache_dir).expanduser().exists()
        and not Path(data.cache_dir).expanduser().is_dir()
    ):
        raise UserError(f"data.cache_dir={data.cache_dir} is a file; give a directory (it is created if missing)")
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


def _check_progressive_resize(scales: list[float]) -> None:
    if any(not (math.isfinite(s) and 0.0 < s <= 1.0) for s in scales):
        raise UserError(
            f"trainer.progressive_resize={scales}: every input scale must be in (0, 1]; [] trains at full size"
        )


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
    task, metric = split_metric_key(objective)
    if not metric or task not in task_names:
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
