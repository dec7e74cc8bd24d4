"""MGDA: multiple-gradient descent as multi-objective optimisation (Sener & Koltun, NeurIPS 2018)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import Tensor

from mtl_cli.weighting.base import StepContext
from mtl_cli.weighting.gradients import GradientOptions, GradientWeighting, GradOn
from mtl_cli.weighting.qp import min_norm_simplex


class Normalization(enum.Enum):
    """How the task gradients are scaled before the min-norm problem (the authors' code offers these)."""

    none = "none"
    l2 = "l2"
    loss = "loss"
    loss_plus = "loss+"


@dataclass
class MGDAOptions(GradientOptions):
    # MGDA-UB, the paper's efficient variant: gradients of the shared representation.
    grad_on: GradOn = GradOn.features
    normalization: Normalization = Normalization.none


def mgda_weights(gram: Tensor, losses: Tensor | None = None, normalization: str = "none") -> Tensor:
    """Weights of the minimum-norm point of the convex hull of the (scaled) task gradients.

    With ``normalization`` the gradients are divided by their norm (``l2``), their loss
    (``loss``) or both (``loss+``) first; the returned weights apply to the unscaled
    gradients, so the combined gradient is ``weights @ grads`` either way.
    """
    mode = Normalization(normalization)
    norms = torch.diagonal(gram).clamp_min(0).sqrt()
    if mode is Normalization.none:
        scale = torch.ones_like(norms)
    elif mode is Normalization.l2:
        scale = norms
    else:
        if losses is None:
            raise ValueError(f"MGDA normalization '{mode.value}' needs the task losses")
        scale = losses.to(norms) * (norms if mode is Normalization.loss_plus else 1.0)
    scale = scale.clamp_min(1e-12)
    w = min_norm_simplex(gram / (scale[:, None] * scale[None, :]))
    return (w / scale.to(w)).to(gram.dtype)


class MGDA(GradientWeighting):
    """The common descent direction of least norm: no task's loss increases to first order.

    Default ``grad_on=features`` is MGDA-UB (the paper's efficient upper-bound variant);
    ``grad_on=params`` is exact MGDA on the shared parameters.
    """

    options_class = MGDAOptions

    def combine(self, grads: Tensor, gram: Tensor, losses: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        assert isinstance(self.options, MGDAOptions)
        return mgda_weights(gram, losses, self.options.normalization.value), grads
