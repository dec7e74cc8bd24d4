"""The interface every loss- or gradient-balancing method implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import Tensor, nn

from mtl_cli.engine.distributed import all_reduce_mean_


@dataclass
class StepContext:
    """What a weighting method may use besides the losses during one training step."""

    shared_params: Sequence[nn.Parameter]
    features: Tensor | None
    step: int
    epoch: int
    # fp16 loss scale (device scalar), None without a GradScaler; set for
    # ``per_task_gradients`` methods. The loss values are true values, but gradients taken
    # from them come out multiplied by this scale: divide per-task gradients by it before
    # computing scale-dependent geometry (in fp32), and leave the final gradient multiplied
    # by it (the trainer unscales before the optimiser step).
    grad_scale: Tensor | None = None


class Weighting(nn.Module):
    """Turns the per-task losses of one step into gradients on the model's parameters.

    ``backward(losses, ctx)`` receives the task losses as a vector in task order, runs the
    backward pass(es) and returns the task weights it used (detached, shape ``(k,)``) for
    logging. Methods with learnable state register it as parameters or buffers, so it is
    optimised and checkpointed with the model. ``needs_features`` asks the trainer for the
    shared representation in ``ctx.features``.
    """

    needs_features: ClassVar[bool] = False
    # True for methods that compute per-task gradients themselves (``autograd.grad`` of each
    # loss) and combine them. Under DDP the trainer then runs the step without DDP's
    # automatic gradient averaging and averages every parameter's final gradient itself
    # after ``backward``; the method makes its combination identical on every rank by
    # averaging what it combines with ``self.all_reduce_mean_`` first (see below).
    per_task_gradients: ClassVar[bool] = False

    def __init__(self, task_names: Sequence[str], static_weights: Sequence[float]) -> None:
        super().__init__()
        self.task_names = list(task_names)
        self.register_buffer("static_weights", torch.tensor(list(static_weights), dtype=torch.float32))

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def all_reduce_mean_(tensor: Tensor) -> Tensor:
        """Average ``tensor`` in place over the DDP ranks (identity in a single process).

        Call it on every rank, in the same order, on what the method combines: the
        per-task gradient matrix ``G`` (k x P, fp32) before projecting or solving, or a
        k x k Gram matrix of feature gradients. Every rank then derives the same weights /
        direction as one process with the whole global batch. Gradients must accumulate
        into ``.grad`` (``backward``, or add to ``p.grad`` when it is not ``None``), never
        replace it, so gradient accumulation over several batches keeps working.
        """
        return all_reduce_mean_(tensor)

    def epoch_end(self, mean_losses: Tensor) -> None:
        """Called with the epoch's mean training loss per task (for methods that need history)."""
