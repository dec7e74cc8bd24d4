"""Equal / fixed weighting: backward on sum_i w_i * L_i with static weights."""

from __future__ import annotations

from torch import Tensor

from mtl_cli.weighting.base import StepContext, Weighting


class EqualWeighting(Weighting):
    """L_total = sum_i w_i L_i with w_i = ``loss.weights.<task>`` (1 by default: the plain sum).

    Registered as ``ew`` and ``fixed`` (the same rule, named for weight sweeps such as
    ``-m weighting=fixed loss.weights.seg=0.5,1.0,2.0``).
    """

    uses_static_weights = True

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        weights = self.static_weights.to(losses.dtype)
        (weights * losses).sum().backward()
        return weights
