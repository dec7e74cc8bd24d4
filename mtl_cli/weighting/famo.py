"""FAMO: fast adaptive multitask optimization (Liu et al., NeurIPS 2023)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mtl_cli.weighting.base import MethodOptions, StepContext, Weighting, require

_EPS = 1e-8
_BETAS = (0.9, 0.999)


@dataclass
class FAMOOptions(MethodOptions):
    lr: float = 0.025  # learning rate of the weight logits (the paper's w_lr)
    gamma: float = 0.01  # weight decay of the weight logits

    def check(self, method: str) -> None:
        require(self.lr > 0, method, "lr", self.lr, "a learning rate > 0")
        require(self.gamma >= 0, method, "gamma", self.gamma, "a weight decay >= 0")


def famo_loss(losses: Tensor, logits: Tensor) -> tuple[Tensor, Tensor]:
    """The loss whose gradient FAMO follows, and the weights it implies on the raw losses.

    ``sum_i z_i log(L_i) / c`` with ``z = softmax(logits)`` and ``c = sum_i z_i / L_i``
    (held constant): its gradient is ``sum_i w_i dL_i`` with ``w_i = z_i / (c L_i)``,
    which sum to 1, so every task's log-loss falls at the rate ``z`` asks for.
    """
    shifted = losses + _EPS
    z = torch.softmax(logits, dim=0)
    c = (z / shifted.detach()).sum()
    return (z * torch.log(shifted)).sum() / c, z / (c * shifted.detach())


def famo_logit_grad(logits: Tensor, previous: Tensor, current: Tensor) -> Tensor:
    """Gradient for the logits: favour the tasks whose log-loss fell least since the last step.

    ``d/d logits of softmax(logits) . delta`` with ``delta_i = log L_i(prev) - log L_i(now)``.
    """
    delta = torch.log(previous + _EPS) - torch.log(current + _EPS)
    z = torch.softmax(logits, dim=0)
    return z * (delta - (z * delta).sum())


class FAMO(Weighting):
    """Loss weights from softmax logits updated by Adam towards equal log-loss decrease.

    The paper updates the logits from the loss change caused by the last step; like its
    efficient variant, this uses the loss of the next training step (a new batch) rather
    than a second forward pass on the same batch. The logits, their Adam moments and
    the previous losses are buffers (saved in checkpoints, not trained by the run's
    optimiser).
    """

    options_class = FAMOOptions

    def __init__(self, task_names, static_weights=None, options=None) -> None:
        super().__init__(task_names, static_weights, options)
        k = self.num_tasks
        self.register_buffer("logits", torch.zeros(k))
        self.register_buffer("adam_m", torch.zeros(k))
        self.register_buffer("adam_v", torch.zeros(k))
        self.register_buffer("adam_t", torch.zeros(()))
        self.register_buffer("previous", torch.zeros(k))
        self.register_buffer("has_previous", torch.zeros((), dtype=torch.bool))

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        current = losses.detach().to(self.logits)
        self._update_logits(current)
        self.previous.copy_(current)
        self.has_previous.fill_(True)
        loss, weights = famo_loss(losses, self.logits.to(losses.dtype))
        loss.backward()
        return weights

    @torch.no_grad()
    def _update_logits(self, current: Tensor) -> None:
        """One Adam step (with L2 weight decay) on the logits, skipped before the first step."""
        assert isinstance(self.options, FAMOOptions)
        lr, gamma = self.options.lr, self.options.gamma
        beta1, beta2 = _BETAS
        grad = famo_logit_grad(self.logits, self.previous, current) + gamma * self.logits
        active = self.has_previous
        t = self.adam_t + active.to(self.adam_t)
        m = torch.where(active, beta1 * self.adam_m + (1 - beta1) * grad, self.adam_m)
        v = torch.where(active, beta2 * self.adam_v + (1 - beta2) * grad * grad, self.adam_v)
        safe_t = t.clamp_min(1)
        step = lr * (m / (1 - beta1**safe_t)) / ((v / (1 - beta2**safe_t)).sqrt() + _EPS)
        self.logits.sub_(torch.where(active, step, torch.zeros_like(step)))
        self.adam_m.copy_(m)
        self.adam_v.copy_(v)
        self.adam_t.copy_(t)
