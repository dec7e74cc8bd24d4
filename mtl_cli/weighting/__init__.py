"""Loss- and gradient-balancing methods, one module each, looked up by ``weighting.name``."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from mtl_cli.errors import UserError
from mtl_cli.weighting.base import StepContext, Weighting
from mtl_cli.weighting.ew import EqualWeighting

METHODS: dict[str, type[Weighting]] = {
    "ew": EqualWeighting,
}


def build_weighting(
    name: str, task_names: Sequence[str], static_weights: Sequence[float], hparams: Mapping[str, Any] | None = None
) -> Weighting:
    """Build the weighting method ``name`` with its hyperparameters."""
    if name not in METHODS:
        raise UserError(f"unknown weighting method '{name}'; known methods: {', '.join(METHODS)}")
    options = {k: v for k, v in dict(hparams or {}).items() if k != "name"}
    try:
        return METHODS[name](task_names, static_weights, **options)
    except TypeError as exc:
        raise UserError(f"weighting={name}: bad option ({exc})") from exc


__all__ = ["METHODS", "StepContext", "Weighting", "build_weighting"]
