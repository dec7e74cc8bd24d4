"""Loss- and gradient-balancing methods, one module each, looked up by ``weighting.name``.

``build_weighting`` turns ``weighting.*`` into a method (type-checking its options
against the method's dataclass); ``aggregate(name, grads, **hparams)`` exposes each
gradient method's combination rule as a pure function of the stacked task gradients.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor

from mtl_cli.errors import UserError, one_line
from mtl_cli.weighting.aligned_mtl import AlignedMTL, aligned_mtl_weights
from mtl_cli.weighting.base import MethodOptions, StepContext, Weighting
from mtl_cli.weighting.cagrad import CAGrad, cagrad_weights
from mtl_cli.weighting.db_mtl import DBMTL, DBMTLState, db_mtl_combine
from mtl_cli.weighting.dwa import DynamicWeightAverage
from mtl_cli.weighting.ew import EqualWeighting
from mtl_cli.weighting.famo import FAMO
from mtl_cli.weighting.gls import GeometricLossStrategy
from mtl_cli.weighting.gradients import GradientWeighting, GradOn
from mtl_cli.weighting.gradnorm import GradNorm
from mtl_cli.weighting.gradvac import GradVac, gradvac_weights
from mtl_cli.weighting.imtl import IMTL, imtl_weights
from mtl_cli.weighting.mgda import MGDA, mgda_weights
from mtl_cli.weighting.nash_mtl import NashMTL, NashState, nash_weights
from mtl_cli.weighting.pcgrad import PCGrad, pcgrad_weights
from mtl_cli.weighting.rlw import RandomLossWeighting
from mtl_cli.weighting.upgrad import UPGrad, upgrad_weights
from mtl_cli.weighting.uw import UncertaintyWeighting

METHODS: dict[str, type[Weighting]] = {
    "ew": EqualWeighting,
    "fixed": EqualWeighting,
    "uw": UncertaintyWeighting,
    "dwa": DynamicWeightAverage,
    "rlw": RandomLossWeighting,
    "gls": GeometricLossStrategy,
    "famo": FAMO,
    "gradnorm": GradNorm,
    "db_mtl": DBMTL,
    "mgda": MGDA,
    "pcgrad": PCGrad,
    "gradvac": GradVac,
    "cagrad": CAGrad,
    "imtl": IMTL,
    "nash_mtl": NashMTL,
    "aligned_mtl": AlignedMTL,
    "upgrad": UPGrad,
}


def method_options(name: str) -> list[str] | None:
    """The option names of weighting method ``name`` (``weighting.<option>``), ``None`` for an unknown method."""
    if name not in METHODS:
        return None
    return [f.name for f in dataclasses.fields(METHODS[name].options_class)]


def parse_options(name: str, raw: Mapping[str, Any] | None) -> MethodOptions:
    """The typed, range-checked options of method ``name`` from ``weighting.*`` (``name`` excluded)."""
    if name not in METHODS:
        raise UserError(f"unknown weighting method '{name}'; known methods: {', '.join(METHODS)}")
    schema = METHODS[name].options_class
    values = {k: v for k, v in dict(raw or {}).items() if k != "name"}
    known = [f.name for f in dataclasses.fields(schema)]
    for key in values:
        if key not in known:
            listed = ", ".join(known) or "none"
            raise UserError(f"weighting.{key}: weighting={name} has no option '{key}'; its options: {listed}")
    try:
        typed = OmegaConf.merge(OmegaConf.structured(schema), values)
        options = OmegaConf.to_object(typed)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        raise UserError(
            f"weighting.{key}={values.get(key)}: wrong type for weighting={name} ({one_line(str(exc).splitlines()[0])})"
        ) from exc
    assert isinstance(options, MethodOptions)
    options.check(name)
    return options


def check_static_weights(name: str, task_names: Sequence[str], static_weights: Sequence[float]) -> None:
    """Refuse ``loss.weights`` other than 1 for a method that chooses the weights itself."""
    if METHODS[name].uses_static_weights:
        return
    for task, weight in zip(task_names, static_weights):
        if weight != 1.0:
            raise UserError(
                f"loss.weights.{task}={weight} has no effect with weighting={name}, which sets the task weights "
                f"itself; drop it, or use weighting=fixed for static weights"
            )


def build_weighting(
    name: str, task_names: Sequence[str], static_weights: Sequence[float], hparams: Mapping[str, Any] | None = None
) -> Weighting:
    """Build the weighting method ``name`` with its hyperparameters (``weighting.*``)."""
    options = parse_options(name, hparams)
    check_static_weights(name, task_names, static_weights)
    cls = METHODS[name]
    if cls.options_class is MethodOptions:  # no options: the two-argument constructor
        return cls(task_names, static_weights)
    return cls(task_names, static_weights, options)  # type: ignore[call-arg]


# ----------------------------------------------------------------- pure combination rules
def _from_gram(rule: Callable[..., Tensor]) -> Callable[..., tuple[Tensor, Tensor]]:
    def combine(grads: Tensor, **hparams: Any) -> tuple[Tensor, Tensor]:
        grads = grads.to(torch.float32) if grads.dtype in (torch.float16, torch.bfloat16) else grads
        weights = rule(grads @ grads.T, **hparams).to(grads.dtype)
        return weights @ grads, weights

    combine.__doc__ = rule.__doc__
    return combine


def _db_mtl(grads: Tensor, state: DBMTLState, beta: float = 0.9, beta_sigma: float = 0.5) -> tuple[Tensor, Tensor]:
    weights = db_mtl_combine(grads, state, beta, beta_sigma)
    return weights @ state.average, weights


AGGREGATORS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "mgda": _from_gram(mgda_weights),
    "pcgrad": _from_gram(pcgrad_weights),
    "gradvac": _from_gram(gradvac_weights),
    "cagrad": _from_gram(cagrad_weights),
    "imtl": _from_gram(imtl_weights),
    "nash_mtl": _from_gram(nash_weights),
    "aligned_mtl": _from_gram(aligned_mtl_weights),
    "upgrad": _from_gram(upgrad_weights),
    "db_mtl": _db_mtl,
}


def aggregate(name: str, grads: Tensor, **hparams: Any) -> tuple[Tensor, Tensor]:
    """Combine the task gradients ``grads`` (k, d) by method ``name``: returns ``(combined (d,), weights (k,))``.

    ``combined == weights @ grads`` (for ``db_mtl``: ``weights @ state.average``).
    Stateful rules take their state explicitly and update it in place: ``gradvac``
    ``targets=`` (k, k), ``nash_mtl`` ``state=NashState.initial(k)``, ``db_mtl``
    ``state=DBMTLState(average, steps)``. Random ones (``pcgrad``, ``gradvac``) accept
    ``generator=`` or explicit ``orders=``.
    """
    if name not in AGGREGATORS:
        raise ValueError(f"no gradient aggregation rule '{name}'; rules: {', '.join(AGGREGATORS)}")
    return AGGREGATORS[name](grads, **hparams)


__all__ = [
    "AGGREGATORS",
    "DBMTLState",
    "GradOn",
    "GradientWeighting",
    "METHODS",
    "MethodOptions",
    "NashState",
    "StepContext",
    "Weighting",
    "aggregate",
    "build_weighting",
    "check_static_weights",
    "method_options",
    "parse_options",
]
