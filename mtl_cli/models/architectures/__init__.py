"""Sharing architectures by name (``arch=<name>``), one module each."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig

from mtl_cli.config.schema import ArchConfig
from mtl_cli.errors import UserError
from mtl_cli.models.architectures import cross_stitch, grouped, mmoe, mtan, shared_layers, shared_weights
from mtl_cli.models.architectures.common import BackboneFactory
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.tasks import Task


@dataclass(frozen=True)
class Architecture:
    """How to build one architecture, and which ``arch.*`` options (besides ``name``) it reads."""

    build: Callable[[DictConfig, BackboneFactory, list[Task]], MultiTaskModel]
    options: tuple[str, ...] = ()


ARCHITECTURES: dict[str, Architecture] = {
    "shared_weights": Architecture(shared_weights.build),
    "shared_layers": Architecture(shared_layers.build, ("branch_at",)),
    "cross_stitch": Architecture(cross_stitch.build, ("stitch_init",)),
    "mtan": Architecture(mtan.build),
    "mmoe": Architecture(mmoe.build, ("branch_at", "num_experts")),
    "grouped": Architecture(grouped.build, ("branch_at", "groups", "warmup_steps")),
}

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ArchConfig) if f.name != "name"}


def build_architecture(arch: DictConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MultiTaskModel:
    """Build ``arch.name``; an ``arch.*`` option it would silently ignore is a ``UserError``."""
    if arch.name not in ARCHITECTURES:
        raise UserError(f"unknown architecture '{arch.name}'; known architectures: {', '.join(ARCHITECTURES)}")
    spec = ARCHITECTURES[arch.name]
    for key, default in _DEFAULTS.items():
        if key not in spec.options and arch.get(key, default) != default:
            readers = ", ".join(name for name, other in ARCHITECTURES.items() if key in other.options)
            raise UserError(f"arch.{key}={arch[key]} is not used by arch={arch.name} (only by {readers}); remove it")
    return spec.build(arch, make_backbone, tasks)


__all__ = ["ARCHITECTURES", "Architecture", "BackboneFactory", "build_architecture"]
