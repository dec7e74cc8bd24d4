"""Per-task gradients of the shared block, and the base class of the gradient methods.

A gradient method needs one gradient per task of the shared block: either of the
shared parameters (``grad_on=params``) or of the shared representation the model
returns with ``return_features=True`` (``grad_on=features``, the "upper bound" variant
of Sener & Koltun, much cheaper because only the task heads are differentiated k
times). The gradients land in a preallocated (k, d) float32 buffer on the model's
device; the method turns them into one combined gradient, which is written back
(``params``) or backpropagated through the shared block (``features``). Parameters
that are not shared get their own task's gradient from the same backward passes.

Mechanism (measured in ``benchmarks/bench_weighting.py``): k separate
``torch.autograd.grad`` calls, each from one task's scalar loss, beat one batched call
(``is_grads_batched=True``): the batched call pushes k gradients (k - 1 of them zero)
through every task head, while separate calls visit each head once.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from mtl_cli.errors import UserError
from mtl_cli.weighting.base import MethodOptions, StepContext, Weighting


class GradOn(enum.Enum):
    """What the task gradients are taken of."""

    params = "params"
    features = "features"


@dataclass
class GradientOptions(MethodOptions):
    """Options every gradient method has."""

    grad_on: GradOn = GradOn.params


class TaskGradients:
    """Computes the (k, d) matrix of per-task gradients into a reused float32 buffer.

    ``compute(losses, targets, others)`` differentiates each scalar loss with respect to
    ``targets`` (rows of the matrix) and ``others``; every tensor in ``others`` receives
    the sum over tasks of its gradients in ``.grad`` (for a task head: its own task's).
    ``batched=True`` uses one vectorised call instead of k calls (kept for measuring).
    """

    def __init__(self, batched: bool = False) -> None:
        self.batched = batched
        self.buffer: Tensor | None = None
        self._rows: list[list[Tensor]] = []
        self._key: tuple | None = None

    def _views(self, k: int, targets: Sequence[Tensor]) -> Tensor:
        key = (k, tuple((t.shape, t.device) for t in targets))
        if key != self._key:
            sizes = [t.numel() for t in targets]
            buffer = torch.zeros(k, sum(sizes), dtype=torch.float32, device=targets[0].device)
            self._rows = [[v.view(t.shape) for v, t in zip(buffer[i].split(sizes), targets)] for i in range(k)]
            self.buffer, self._key = buffer, key
        assert self.buffer is not None
        return self.buffer

    def compute(
        self, losses: Sequence[Tensor], targets: Sequence[Tensor], others: Sequence[Tensor], retain_graph: bool
    ) -> Tensor:
        """Fill and return the buffer; ``retain_graph`` keeps the graph after the last task."""
        k = len(losses)
        buffer = self._views(k, targets)
        inputs = [*targets, *others]
        if self.batched:
            eye = torch.eye(k, dtype=losses[0].dtype, device=losses[0].device)
            grads = torch.autograd.grad(
                list(losses),
                inputs,
                grad_outputs=list(eye),
                retain_graph=retain_graph,
                allow_unused=True,
                is_grads_batched=True,
            )
            for j, grad in enumerate(grads[: len(targets)]):
                for i in range(k):
                    self._store(self._rows[i][j], None if grad is None else grad[i])
            _accumulate(others, [None if g is None else g.sum(0) for g in grads[len(targets) :]])
            return buffer
        for i, loss in enumerate(losses):
            grads = torch.autograd.grad(loss, inputs, retain_graph=retain_graph or i < k - 1, allow_unused=True)
            for row, grad in zip(self._rows[i], grads[: len(targets)]):
                self._store(row, grad)
            _accumulate(others, grads[len(targets) :])
        return buffer

    @staticmethod
    def _store(row: Tensor, grad: Tensor | None) -> None:
        if grad is None:
            row.zero_()
        else:
            row.copy_(grad)


def _accumulate(params: Sequence[Tensor], grads: Sequence[Tensor | None]) -> None:
    for param, grad in zip(params, grads):
        if grad is None:
            continue
        if param.grad is None:
            param.grad = grad
        else:
            param.grad.add_(grad)


def check_representation(losses: Sequence[Tensor], features: Tensor, shared: Sequence[nn.Parameter]) -> None:
    """Refuse ``grad_on=features`` for a model whose shared parameters bypass its representation.

    Combining gradients at the representation and backpropagating the result is right
    only if the shared parameters influence the losses through the representation
    alone. Run once, on the first step: compare the shared parameters' gradient of the
    summed losses with the part that flows through the representation.
    """
    params = [p for p in shared if p.requires_grad]
    total = sum(losses)
    direct = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
    (at_features,) = torch.autograd.grad(total, [features], retain_graph=True)
    through = torch.autograd.grad(features, params, grad_outputs=at_features, retain_graph=True, allow_unused=True)
    difference = reference = torch.zeros((), device=features.device)
    for d, t in zip(direct, through):
        d = torch.zeros((), device=features.device) if d is None else d.float()
        t = torch.zeros((), device=features.device) if t is None else t.float()
        difference = difference + (d - t).pow(2).sum()
        reference = reference + d.pow(2).sum()
    gap = float(difference.sqrt() / reference.sqrt().clamp_min(1e-30))
    if gap > 1e-2:
        raise UserError(
            f"weighting.grad_on=features: {gap:.0%} of the shared parameters' gradient does not pass through the "
            f"shared representation this model returns, and would be lost; use weighting.grad_on=params"
        )


def cosine_matrix(gram: Tensor) -> Tensor:
    """Pairwise cosine similarities of the task gradients from their Gram matrix."""
    norms = torch.diagonal(gram).clamp_min(0).sqrt().clamp_min(1e-12)
    return gram / (norms[:, None] * norms[None, :])


def pair_names(task_names: Sequence[str]) -> list[tuple[int, int, str]]:
    """(i, j, "cos/<a>~<b>") for every unordered pair of tasks."""
    return [(i, j, f"cos/{a}~{b}") for i, a in enumerate(task_names) for j, b in enumerate(task_names) if i < j]


class GradientWeighting(Weighting):
    """Base of the methods that combine per-task gradients of the shared block.

    Subclasses implement ``combine(grads, gram, losses) -> (weights, basis)``: the task
    weights and the (k, d) matrix they weigh (the gradients themselves, or a method's
    running average of them); the combined gradient is ``weights @ basis``. They may
    override ``transform`` to differentiate a function of each loss (IMTL's scaled
    losses, DB-MTL's log-losses) instead of the loss itself. ``combine`` always sees
    true gradients (divided by the fp16 loss scale) that are the same on every DDP rank
    (parameter gradients averaged over ranks; for the representation, whose gradients
    are per sample, the Gram matrix is averaged).
    """

    options_class: ClassVar[type[MethodOptions]] = GradientOptions
    per_task_gradients: ClassVar[bool] = True

    def __init__(self, task_names, static_weights=None, options=None) -> None:
        super().__init__(task_names, static_weights, options)
        assert isinstance(self.options, GradientOptions)
        self.needs_features = self.options.grad_on is GradOn.features
        self.gradients = TaskGradients()
        self.last_cosine: Tensor | None = None
        self.representation_checked = False

    # ----------------------------------------------------------------- hooks
    def transform(self, losses: Sequence[Tensor]) -> list[Tensor]:
        """The scalars whose gradients are combined (the losses themselves by default)."""
        return list(losses)

    def combine(self, grads: Tensor, gram: Tensor, losses: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        raise NotImplementedError  # pragma: no cover - abstract

    # ----------------------------------------------------------------- the step
    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        task_losses = self.transform(list(ctx.task_losses) or list(losses.unbind(0)))
        own = [p for p in self.parameters() if p.requires_grad]
        targets = self.gradient_targets(ctx)
        if self.needs_features and not self.representation_checked:
            check_representation(task_losses, targets[0], ctx.shared_params)
            self.representation_checked = True
        grads = self.gradients.compute(task_losses, targets, [*ctx.task_params, *own], retain_graph=self.needs_features)
        if ctx.grad_scale is not None:  # fp16: the methods see true gradients
            grads.div_(ctx.grad_scale)
        if not self.needs_features:
            self.all_reduce_mean_(grads)  # DDP: every rank combines the global per-task gradients
        gram = grads @ grads.T
        if self.needs_features:
            self.all_reduce_mean_(gram)  # representation gradients are per sample: share their geometry
        self.last_cosine = cosine_matrix(gram)
        weights, basis = self.combine(grads, gram, losses.detach(), ctx)
        coefficients = weights if ctx.grad_scale is None else weights * ctx.grad_scale
        combined = coefficients.to(basis.dtype) @ basis  # fresh: the parameters' .grad may keep it
        pieces = [g.view(t.shape) for g, t in zip(combined.split([t.numel() for t in targets]), targets)]
        self.apply_shared_grads(targets, pieces, ctx)
        return weights.to(losses.dtype)

    def gradient_targets(self, ctx: StepContext) -> list[Tensor]:
        """The tensors whose per-task gradients are combined: the representation or the shared parameters."""
        if self.needs_features:
            if ctx.features is None:
                raise UserError("weighting.grad_on=features: the model returned no shared representation")
            return [ctx.features]
        return [p for p in ctx.shared_params if p.requires_grad]

    def apply_shared_grads(self, targets: Sequence[Tensor], grads: Sequence[Tensor], ctx: StepContext) -> None:
        """Write the combined gradient: into the parameters' ``.grad``, or backpropagate it from the representation."""
        if self.needs_features:
            targets[0].backward(grads[0].to(targets[0].dtype))
            return
        for param, grad in zip(targets, grads):
            grad = grad.to(param.dtype)
            if param.grad is None:
                param.grad = grad
            else:
                param.grad.add_(grad)

    # ----------------------------------------------------------------- reports
    def step_report(self, step: int) -> dict[str, float]:
        if self.last_cosine is None:
            return {}
        values = self.last_cosine.tolist()
        return {name: values[i][j] for i, j, name in pair_names(self.task_names)}
