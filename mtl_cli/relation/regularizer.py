"""Graph-regularised MTL: lambda * sum_ij R_ij ||theta_i - theta_j||^2 over same-shaped task blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from mtl_cli.errors import UserError

if TYPE_CHECKING:
    from mtl_cli.models.base import MultiTaskModel


class RelationRegularizer:
    """Couples the task-specific parameters of related tasks.

    A *block* is a parameter at the same place (``task_named_parameters`` name) in several
    tasks with the same shape; for each block with members ``theta_i``::

        Omega = lambda * sum_ij R_ij ||theta_i - theta_j||^2

    With ``S = R + R^T`` and the graph Laplacian ``L = diag(S 1) - S`` this is
    ``lambda * tr(Theta^T L Theta)``, whose gradient ``2 lambda L Theta`` ``add_gradient``
    adds to the parameters' ``.grad`` without building an autograd graph.
    """

    def __init__(self, model: MultiTaskModel, matrix: Sequence[Sequence[float]], strength: float) -> None:
        self.task_names = list(model.task_names)
        self.strength = float(strength)
        blocks: dict[tuple[str, torch.Size], list[tuple[int, nn.Parameter]]] = {}
        for i, task in enumerate(self.task_names):
            for name, param in model.task_named_parameters(task).items():
                blocks.setdefault((name, param.shape), []).append((i, param))
        self.blocks = [members for members in blocks.values() if len(members) > 1]
        if not self.blocks:
            raise UserError(
                f"relation.lambda>0 but the tasks {', '.join(self.task_names)} have no task-specific parameters of "
                f"the same shape to couple; use arch=shared_layers with an earlier arch.branch_at, or arch=cross_stitch"
            )
        self.set_matrix(matrix)

    def set_matrix(self, matrix: Sequence[Sequence[float]] | Tensor) -> None:
        """Use relation matrix ``matrix`` (k x k, task order, entries >= 0) from now on."""
        device = self.blocks[0][0][1].device
        self.matrix = torch.as_tensor(matrix, dtype=torch.float32, device=device).clone()
        sym = self.matrix + self.matrix.T
        self._laplacians = []
        for members in self.blocks:
            idx = torch.tensor([i for i, _ in members], device=device)
            s = sym[idx][:, idx]
            self._laplacians.append(torch.diag(s.sum(dim=1)) - s)

    def penalty(self) -> Tensor:
        """Omega (differentiable), summed over ordered task pairs as written above."""
        total = self.matrix.new_zeros(())
        for members in self.blocks:
            for i, theta_i in members:
                for j, theta_j in members:
                    if i != j:
                        total = total + self.matrix[i, j] * (theta_i - theta_j).pow(2).sum()
        return self.strength * total

    @torch.no_grad()
    def value(self) -> float:
        """Omega now, as a number (``metrics.csv`` column ``relation/omega``)."""
        return float(self.penalty())

    @torch.no_grad()
    def add_gradient(self, grad_scale: Tensor | None = None) -> None:
        """Add d Omega / d theta to every coupled parameter's ``.grad``.

        ``grad_scale``: the fp16 loss scale the other gradients carry (they are divided by
        it before the optimiser step), so this gradient is multiplied by it.
        """
        for members, laplacian in zip(self.blocks, self._laplacians):
            theta = torch.stack([p.detach() for _, p in members])
            grad = torch.tensordot(laplacian.to(theta.dtype), theta, dims=1).mul_(2.0 * self.strength)
            if grad_scale is not None:
                grad.mul_(grad_scale)
            for (_, param), g in zip(members, grad):
                if param.grad is None:
                    param.grad = g.clone()
                else:
                    param.grad.add_(g)
