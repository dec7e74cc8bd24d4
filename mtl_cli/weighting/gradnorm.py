"""GradNorm (Chen et al., ICML 2018)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mtl_cli.errors import UserError
from mtl_cli.weighting.base import StepContext, Weighting, require
from mtl_cli.weighting.gradients import GradientOptions, GradOn, TaskGradients, check_representation


@dataclass
class GradNormOptions(GradientOptions):
    alpha: float = 1.5  # restoring force towards equal training rates (the paper's NYUv2 value)

    def check(self, method: str) -> None:
        require(self.alpha >= 0, method, "alpha", self.alpha, "alpha >= 0")


def gradnorm_weight_grad(grad_norms: Tensor, weights: Tensor, loss_ratios: Tensor, alpha: float) -> Tensor:
    """Gradient of ``sum_i |w_i ||g_i|| - mean_j(w_j ||g_j||) r_i^alpha|`` with respect to ``w``.

    ``grad_norms[i] = ||dL_i/dW||`` (unweighted), ``loss_ratios[i] = L_i(t) / L_i(0)``;
    ``r_i`` is that ratio over its mean (the relative inverse training rate). The target
    is held constant, as in the paper, so the gradient is ``sign(G_i - target_i) ||g_i||``:
    a task that trains slower than average (``r_i > 1``) gets its weight raised.
    """
    weighted = weights * grad_norms
    relative = loss_ratios / loss_ratios.mean().clamp_min(1e-12)
    target = weighted.mean() * relative.pow(alpha)
    return torch.sign(weighted - target) * grad_norms


class GradNorm(Weighting):
    """Learned loss weights that equalise the tasks' gradient norms scaled by their training rates.

    Gradient norms are taken at the last shared layer (``grad_on=params``: the last
    shared weight tensor, as in the paper) or at the shared representation
    (``grad_on=features``). The weights are parameters trained by the run's optimiser
    on the GradNorm objective and renormalised to sum to k before every step; the model
    is trained on ``sum_i w_i L_i``.
    """

    options_class = GradNormOptions
    per_task_gradients = True

    def __init__(self, task_names, static_weights=None, options=None) -> None:
        super().__init__(task_names, static_weights, options)
        assert isinstance(self.options, GradNormOptions)
        self.needs_features = self.options.grad_on is GradOn.features
        self.loss_weights = nn.Parameter(torch.ones(self.num_tasks))
        self.register_buffer("initial_losses", torch.ones(self.num_tasks))
        self.register_buffer("has_initial", torch.zeros((), dtype=torch.bool))
        self.gradients = TaskGradients()
        self.representation_checked = False

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        assert isinstance(self.options, GradNormOptions)
        with torch.no_grad():
            positive = self.loss_weights.clamp_min(1e-6)
            self.loss_weights.copy_(self.num_tasks * positive / positive.sum())
        detached = losses.detach().to(self.initial_losses)
        self.initial_losses.copy_(torch.where(self.has_initial, self.initial_losses, detached))
        self.has_initial.fill_(True)
        weights = self.loss_weights.detach().clone()  # the optimiser changes the parameter in place
        task_losses = list(ctx.task_losses) or list(losses.unbind(0))
        scaled = [w * loss for w, loss in zip(weights.to(losses.dtype).unbind(0), task_losses)]
        if self.needs_features:
            # One backward per task through its head (which so gets w_i dL_i), then one
            # through the shared block with the summed representation gradient.
            assert ctx.features is not None, "the trainer passes features when needs_features is set"
            if not self.representation_checked:
                check_representation(scaled, ctx.features, ctx.shared_params)
                self.representation_checked = True
            grads = self.gradients.compute(scaled, [ctx.features], ctx.task_params, retain_graph=True)
            ctx.features.backward(grads.sum(dim=0).view_as(ctx.features).to(ctx.features.dtype))
            squared = self.all_reduce_mean_(grads.pow(2).sum(dim=1))  # per-sample gradients: share the norms
        else:
            grads = self.gradients.compute(scaled, [self._last_shared_layer(ctx)], (), retain_graph=True)
            sum(scaled).backward()
            squared = self.all_reduce_mean_(grads).pow(2).sum(dim=1)  # DDP: norms of the global gradients
        norms = squared.sqrt() / weights  # ||dL_i/dW||, unweighted
        if ctx.grad_scale is not None:  # fp16: true norms (the weights' own gradient is not loss-scaled)
            norms = norms / ctx.grad_scale
        ratios = detached / self.initial_losses.clamp_min(1e-12)
        update = gradnorm_weight_grad(norms, weights, ratios, self.options.alpha)
        if self.loss_weights.grad is None:
            self.loss_weights.grad = update
        else:  # gradient accumulation over several batches
            self.loss_weights.grad.add_(update)
        return weights.to(losses.dtype)

    @staticmethod
    def _last_shared_layer(ctx: StepContext) -> Tensor:
        layers = [p for p in ctx.shared_params if p.requires_grad and p.dim() >= 2]
        if not layers:
            raise UserError(
                "weighting=gradnorm: the model shares no weight matrix to take gradient norms at; "
                "use weighting.grad_on=features"
            )
        return layers[-1]
