"""Configuration: the schema (``schema``), the ``task`` group (``task_groups``) and ``validation``.

Hydra composes the YAML files under ``configs/`` (see ``paths``) on top of the schema's
dataclasses; ``validate`` then checks values and returns the typed config.
"""

from mtl_cli.config.paths import CONFIG_DIR
from mtl_cli.config.schema import (
    ArchConfig,
    AugmentConfig,
    BackboneConfig,
    Backend,
    BatchNormMode,
    DataConfig,
    Device,
    LossConfig,
    MTLConfig,
    OptimConfig,
    OptimizerName,
    RelationConfig,
    RelationName,
    SchedulerName,
    SweepConfig,
    TaskConfig,
    TrainerConfig,
)
from mtl_cli.config.task_groups import (
    canonical_task_choice,
    known_task_names,
    register_configs,
    sort_tasks,
    task_families,
)
from mtl_cli.config.validation import PRECISIONS, task_weights, validate

__all__ = [
    "CONFIG_DIR",
    "PRECISIONS",
    "ArchConfig",
    "AugmentConfig",
    "Backend",
    "BackboneConfig",
    "BatchNormMode",
    "DataConfig",
    "Device",
    "LossConfig",
    "MTLConfig",
    "OptimConfig",
    "OptimizerName",
    "RelationConfig",
    "RelationName",
    "SchedulerName",
    "SweepConfig",
    "TaskConfig",
    "TrainerConfig",
    "canonical_task_choice",
    "known_task_names",
    "register_configs",
    "sort_tasks",
    "task_families",
    "task_weights",
    "validate",
]
