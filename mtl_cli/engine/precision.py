"""Mixed precision: autocast for the forward pass and, for fp16, a gradient scaler.

``trainer.precision``: ``32`` (no autocast), ``bf16`` (autocast to bfloat16 on CPU or GPU;
same exponent range as fp32, so no loss scaling) or ``16`` (autocast to float16 with a
``GradScaler``, CUDA only). Parameters, optimiser state and gradients stay fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mtl_cli.errors import UserError


class Precision:
    """The autocast context and the (optional) loss scaler of one run.

    The training step is ``with p.autocast(): losses = ...``; the weighting receives
    ``p.scale_gradients(losses)``: the same loss values, but every gradient flowing back
    from them into the network is multiplied by the loss scale, so fp16 activation
    gradients do not underflow while the weighting still computes with true loss values
    (methods such as uncertainty weighting are not linear in the losses). The optimiser
    step is ``p.unscale_(opt, unscaled)`` (before clipping) then ``p.step(opt)``, which
    skips the step when fp16 gradients overflowed and adapts the scale.
    """

    def __init__(
        self, device: torch.device, dtype: torch.dtype | None = None, scaler: torch.amp.GradScaler | None = None
    ) -> None:
        self.device_type = device.type
        self.dtype = dtype
        self.scaler = scaler
        self._one = torch.ones((), device=device) if scaler is not None else None

    @classmethod
    def from_config(cls, choice: str, device: torch.device) -> Precision:
        """The precision ``trainer.precision=<choice>`` asks for on ``device`` (clear errors where unsupported)."""
        if choice not in PRECISIONS:
            raise UserError(f"trainer.precision={choice}: choose one of {', '.join(PRECISIONS)}")
        return PRECISIONS[choice](device)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast to the run's dtype (a no-op context for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scale_gradients(self, losses: Tensor) -> Tensor:
        """``losses`` whose backward multiplies the gradient by the loss scale (as is without a scaler)."""
        if self.scaler is None:
            return losses
        return _ScaleGradient.apply(losses, self.scaler.scale(self._one))

    def grad_scale(self) -> Tensor | None:
        """The current loss scale as a device scalar (no host sync), or ``None`` without a scaler."""
        return None if self.scaler is None else self.scaler.scale(self._one)

    def unscale_(self, optimizer: torch.optim.Optimizer, unscaled: Sequence[nn.Parameter] = ()) -> None:
        """Divide the gradients by the loss scale in place (before clipping or inspecting them).

        ``unscaled`` are optimised parameters whose gradients did not flow back through
        the losses (a weighting method's own parameters): they are left as they are.
        """
        if self.scaler is None:
            return
        grads = [p.grad for p in unscaled if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, self.scaler.scale(self._one))
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; with a scaler, skipped on inf/NaN gradients, and the scale updated."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        """The scaler's state for checkpoints (``None`` without a scaler)."""
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``scale`` in the backward pass."""

    @staticmethod
    def forward(ctx: Any, values: Tensor, scale: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(scale)
        return values.view_as(values)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (scale,) = ctx.saved_tensors
        return grad * scale, None


def _fp32(device: torch.device) -> Precision:
    return Precision(device)


def _bf16(device: torch.device) -> Precision:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("trainer.precision=bf16: this GPU has no bfloat16 support; use trainer.precision=16 or 32")
    return Precision(device, torch.bfloat16)


def _fp16(device: torch.device) -> Precision:
    if device.type != "cuda":
        raise UserError(
            "trainer.precision=16 (float16 with loss scaling) needs a CUDA GPU; on CPU use trainer.precision=bf16 or 32"
        )
    return Precision(device, torch.float16, torch.amp.GradScaler(device.type))


# ``trainer.precision`` value -> constructor for a device (raising ``UserError`` where unsupported).
PRECISIONS: dict[str, Callable[[torch.device], Precision]] = {"32": _fp32, "bf16": _bf16, "16": _fp16}
