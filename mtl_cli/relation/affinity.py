"""Inter-task affinity measured during training: gradient cosine and lookahead (Fifty et al. 2021)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.func import functional_call

if TYPE_CHECKING:
    from mtl_cli.models.base import MultiTaskModel

LossFn = Callable[[Mapping[str, Tensor]], Tensor]
"""Maps the model's predictions on the current batch to the per-task losses, ``[k]``."""


class AffinityTracker:
    """Measures two k x k affinity matrices every ``every_n_steps`` steps and averages them.

    - ``cosine[i, j]``: cosine similarity of the gradients of L_i and L_j on the shared
      parameters (1 on the diagonal).
    - ``lookahead[i, j] = 1 - L_j(theta_s - lr * g_i) / L_j(theta_s)``: how much a plain
      gradient step of size ``lr`` on task i alone, applied to the shared parameters,
      lowers task j's loss on the same batch (positive: i helps j).

    A measurement costs k extra backward passes (through the retained graph) and k + 1
    extra forward passes; the model's parameters, buffers (BatchNorm statistics) and
    ``.grad`` are left untouched.
    """

    def __init__(self, model: MultiTaskModel, every_n_steps: int, lr: float) -> None:
        self.model = model
        self.every_n_steps = every_n_steps
        self.lr = lr
        shared = {id(p) for p in model.shared_parameters()}
        self.shared = {name: p for name, p in model.named_parameters() if id(p) in shared}
        k = len(model.task_names)
        device = next(model.parameters()).device
        self.epoch_sums = torch.zeros(2, k, k, device=device)
        self.epoch_count = 0
        self.run_sums = torch.zeros(2, k, k)
        self.run_count = 0

    def due(self, step: int) -> bool:
        """Whether global step ``step`` is a measuring step (every ``every_n_steps``, from 0)."""
        return step % self.every_n_steps == 0

    def measure(
        self, images: Tensor, losses: Tensor, loss_fn: LossFn, grad_scale: Tensor | None = None
    ) -> tuple[Tensor, Tensor] | None:
        """Both matrices for one batch, or ``None`` when a gradient is not finite (fp16 overflow).

        ``losses`` must still hold the graph of this step's forward; their gradients are
        divided by ``grad_scale`` (the fp16 loss scale, if any). The losses before and
        after each lookahead step are both computed here, by forward passes in full
        precision, so autocast rounding does not enter the ratio.
        """
        names, params = list(self.shared), list(self.shared.values())
        k = losses.shape[0]
        grads = []
        for i in range(k):
            g = torch.autograd.grad(losses[i], params, retain_graph=True, allow_unused=True)
            g = [torch.zeros_like(p) if gi is None else gi for p, gi in zip(params, g)]
            grads.append(g if grad_scale is None else [gi / grad_scale for gi in g])
        gram = losses.new_zeros(k, k)
        for n in range(len(params)):  # one parameter at a time: never a k x (all parameters) copy
            per_task = torch.stack([grads[i][n].reshape(-1) for i in range(k)])
            gram += per_task @ per_task.T
        if not torch.isfinite(gram).all():  # a host sync, but only on measuring steps
            return None
        norms = gram.diagonal().sqrt()
        cosine = gram / (norms[:, None] * norms[None, :]).clamp_min(1e-12)
        with torch.no_grad():
            buffers = {name: b.clone() for name, b in self.model.named_buffers()}
            base = loss_fn(functional_call(self.model, buffers, (images,)))
            rows = []
            for i in range(k):
                stepped = {name: p - self.lr * g for name, p, g in zip(names, params, grads[i])}
                after = loss_fn(functional_call(self.model, {**buffers, **stepped}, (images,)))
                rows.append(torch.where(base > 0, 1.0 - after / base, torch.zeros_like(base)))
            lookahead = torch.stack(rows)
        self.epoch_sums[0] += cosine
        self.epoch_sums[1] += lookahead
        self.epoch_count += 1
        return cosine, lookahead

    def epoch_means(self) -> tuple[Tensor, Tensor] | None:
        """Close the epoch: its mean (cosine, lookahead), or ``None`` if nothing was measured."""
        if self.epoch_count == 0:
            return None
        sums = self.epoch_sums.cpu()
        self.run_sums += sums
        self.run_count += self.epoch_count
        means = sums / self.epoch_count
        self.epoch_sums.zero_()
        self.epoch_count = 0
        return means[0], means[1]

    def state_dict(self) -> dict[str, Any]:
        """The running sums and counts (for exact resume)."""
        return {
            "epoch_sums": self.epoch_sums.cpu(),
            "epoch_count": self.epoch_count,
            "run_sums": self.run_sums.clone(),
            "run_count": self.run_count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch_sums.copy_(state["epoch_sums"])
        self.epoch_count = int(state["epoch_count"])
        self.run_sums.copy_(state["run_sums"])
        self.run_count = int(state["run_count"])

    def run_means(self) -> tuple[Tensor, Tensor]:
        """The mean (cosine, lookahead) over every measurement of the closed epochs."""
        means = self.run_sums / max(self.run_count, 1)
        return means[0], means[1]
