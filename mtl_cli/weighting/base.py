"""The interface every loss- or gradient-balancing method implements, and its options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mtl_cli.errors import UserError
from mtl_cli.utils.collectives import all_reduce_mean_


@dataclass
class StepContext:
    """What a weighting method may use besides the losses during one training step.

    ``task_losses`` holds the same losses as separate scalars: a backward pass from one
    of them visits only that task's part of the graph, whereas one from an element of
    the stacked vector also visits every other task's head (with zero gradients).
    ``task_params`` are the trainable parameters that are not shared (the task heads and
    branches); gradient methods give each of them its own task's gradient.
    """

    shared_params: Sequence[nn.Parameter]
    features: Tensor | None
    step: int
    epoch: int
    task_losses: Sequence[Tensor] = ()
    task_params: Sequence[nn.Parameter] = ()
    # fp16 loss scale (device scalar), None without a GradScaler; set for
    # ``per_task_gradients`` methods. The loss values are true values, but gradients taken
    # from them come out multiplied by this scale: divide per-task gradients by it before
    # computing scale-dependent geometry (in fp32), and leave the final gradient multiplied
    # by it (the trainer unscales before the optimiser step).
    grad_scale: Tensor | None = None


@dataclass
class MethodOptions:
    """Hyperparameters of a method (none). Subclasses add typed fields and range checks."""

    def check(self, method: str) -> None:
        """Raise ``UserError`` naming the first out-of-range value."""


def require(ok: bool, method: str, key: str, value: Any, expected: str) -> None:
    """Raise the one-line ``UserError`` for option ``weighting.<key>`` unless ``ok``."""
    if not ok:
        raise UserError(f"weighting.{key}={value}: {method} needs {expected}")


class Weighting(nn.Module):
    """Turns the per-task losses of one step into gradients on the model's parameters.

    ``backward(losses, ctx)`` receives the task losses as a vector in task order, runs the
    backward pass(es) and returns the task weights it used (shape ``(k,)``, on the
    losses' device, never read back to the host) for logging. Methods with learnable
    state register it as parameters (optimised with the model) or buffers (saved with
    it). ``needs_features`` asks the trainer for the shared representation in
    ``ctx.features``. ``uses_static_weights`` is true for the methods that read
    ``loss.weights``; the others choose their own weights, and ``build_weighting``
    refuses a ``loss.weights`` entry other than 1 for them.
    """

    # True for methods that compute per-task gradients themselves (``autograd.grad`` of each
    # loss) and combine them. Under DDP the trainer then runs the step without DDP's
    # automatic gradient averaging and averages every parameter's final gradient itself
    # after ``backward``; the method makes its combination identical on every rank by
    # averaging what it combines with ``self.all_reduce_mean_`` first (see below).
    per_task_gradients: ClassVar[bool] = False
    options_class: ClassVar[type[MethodOptions]] = MethodOptions
    uses_static_weights: ClassVar[bool] = False
    needs_features: bool = False

    def __init__(
        self,
        task_names: Sequence[str],
        static_weights: Sequence[float] | None = None,
        options: MethodOptions | None = None,
    ) -> None:
        super().__init__()
        self.task_names = list(task_names)
        weights = [1.0] * len(self.task_names) if static_weights is None else list(static_weights)
        self.register_buffer("static_weights", torch.tensor(weights, dtype=torch.float32))
        self.options = options if options is not None else type(self).options_class()

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

    def step_report(self, step: int) -> dict[str, float]:
        """Extra values of the latest step for the run log (e.g. gradient cosines).

        The trainer calls this only every ``log_every_n_steps`` steps: reading device
        values here synchronises with the device, so nothing else may call it per step.
        A method may also log warnings here about what happened since the last report.
        """
        return {}

    def summary_extras(self) -> dict[str, Any]:
        """Method-specific facts for ``summary.json`` (e.g. solver failures); plain values only."""
        return {}
