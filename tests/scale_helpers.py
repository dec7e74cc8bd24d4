"""Shared helpers for the scale-out and speed tests: a tiny in-process Trainer, test weightings.

The weighting methods here exist only for tests: a per-task-gradient method (two-task
MGDA), one with learned parameters, and one that fails on rank 1. ``TEST_METHODS`` maps
``weighting.name`` values to them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torch import Tensor, nn

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine import distributed
from mtl_cli.engine.build import build_trainer
from mtl_cli.engine.trainer import Trainer
from mtl_cli.errors import UserError
from mtl_cli.weighting import StepContext, Weighting

TINY = [
    "data.num_train=32",
    "data.num_val=8",
    "data.image_size=32",
    "backbone.width=8",
    "trainer.batch_size=8",
    "trainer.epochs=1",
    "trainer.progress=false",
    "optim.scheduler=none",
]


def compose_config(*overrides: str, base: Sequence[str] = TINY) -> DictConfig:
    """The validated config for ``overrides`` (applied after ``base``)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return validate(compose("train", overrides=[*base, *overrides]))


def build(*overrides: str) -> Trainer:
    """A Trainer for ``task=cls+seg`` at tiny size, with ``overrides`` applied last."""
    return build_trainer(compose_config(*overrides))


def flat_params(module: nn.Module) -> Tensor:
    """All parameters of ``module`` as one vector."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


class TwoTaskMinNorm(Weighting):
    """MGDA for two tasks: the min-norm convex combination of the shared-parameter gradients.

    ``alpha = clamp((g2 - g1) . g2 / |g1 - g2|^2, 0, 1)``, then backward on
    ``alpha L1 + (1 - alpha) L2``. The per-task gradients are averaged over ranks before
    alpha is computed (``reduce=False`` skips that, to show it matters).
    """

    per_task_gradients = True

    def __init__(self, task_names, static_weights, options=None, reduce: bool = True) -> None:
        super().__init__(task_names, static_weights, options)
        self.reduce = reduce

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        shared = [p for p in ctx.shared_params if p.requires_grad]
        rows = [
            torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, shared, retain_graph=True)]) for loss in losses
        ]
        grads = torch.stack(rows).float()
        if self.reduce:
            self.all_reduce_mean_(grads)
        g1, g2 = grads
        diff = g1 - g2
        alpha = ((g2 - g1) @ g2 / diff.dot(diff).clamp_min(1e-30)).clamp(0.0, 1.0)
        weights = torch.stack([alpha, 1 - alpha])
        (weights * losses).sum().backward()
        return weights


class LearnedLogVariance(Weighting):
    """Uncertainty-style weighting with learned parameters: sum_i exp(-s_i) L_i + s_i."""

    def __init__(self, task_names, static_weights, options=None) -> None:
        super().__init__(task_names, static_weights, options)
        self.log_var = nn.Parameter(torch.zeros(len(task_names)))

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        weights = torch.exp(-self.log_var)
        (weights * losses + self.log_var).sum().backward()
        return weights.detach()


class FailsOnRank1(Weighting):
    """Equal weights, but rank 1 reports a (simulated) user-fixable problem at step 1."""

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        if ctx.step == 1 and distributed.current().rank == 1:
            raise UserError("simulated bad batch on this rank; fix the data")
        losses.sum().backward()
        return torch.ones_like(losses)


class TwoTaskMinNormLocal(TwoTaskMinNorm):
    """``TwoTaskMinNorm`` without averaging over ranks: each rank combines its own gradients."""

    def __init__(self, task_names, static_weights, options=None) -> None:
        super().__init__(task_names, static_weights, options, reduce=False)


TEST_METHODS = {
    "test_min_norm": TwoTaskMinNorm,
    "test_min_norm_local": TwoTaskMinNormLocal,
    "test_log_var": LearnedLogVariance,
    "test_fails_on_rank1": FailsOnRank1,
}
