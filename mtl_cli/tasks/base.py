"""The Task interface: everything the library needs to know about one task."""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import Tensor, nn

from mtl_cli.tasks.metrics import MetricAccumulator


class Task(abc.ABC):
    """One learning task: its head, loss, metrics and how its targets are batched.

    Subclasses set ``kind`` (the ``tasks.<name>.kind`` value that selects them),
    ``dense`` (per-pixel output at input resolution, or one output per image),
    ``primary_metric`` (used for "best" checkpoints by default) and implement
    ``out_channels``, ``loss`` and ``metrics``.
    """

    kind: ClassVar[str]
    dense: ClassVar[bool]
    primary_metric: ClassVar[str]
    losses: ClassVar[tuple[str, ...]] = ("default",)
    needs_num_classes: ClassVar[bool] = False
    output_offset: float = 0.0
    output_scale: float = 1.0

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        self.name = name
        self.settings = dict(settings)
        self.loss_name = str(self.settings.get("loss", "default"))
        if self.loss_name not in self.losses:
            from mtl_cli.errors import UserError

            raise UserError(
                f"tasks.{name}.loss={self.loss_name} is not a loss of a {self.kind} task; "
                f"choose one of: {', '.join(self.losses)}"
            )
        self.head_channels = int(self.settings.get("head_channels", 64))

    @property
    @abc.abstractmethod
    def out_channels(self) -> int:
        """Number of output channels (or logits) the head produces."""

    @abc.abstractmethod
    def loss(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        """Scalar loss; ``valid`` is an optional per-sample bool mask (False = no label)."""

    @abc.abstractmethod
    def metrics(self) -> MetricAccumulator:
        """A fresh validation-metric accumulator."""

    def build_head(self, in_channels: Sequence[int]) -> nn.Module:
        """The task-specific output head on feature maps with ``in_channels`` (shallow to deep).

        A dense head fuses all of them; an image-level head pools the deepest. A dense
        output starts at ``output_offset`` and moves in units of ``output_scale``.
        """
        from mtl_cli.models.heads import DenseHead, ImageHead

        if self.dense:
            return DenseHead(in_channels, self.head_channels, self.out_channels, self.output_offset, self.output_scale)
        return ImageHead(in_channels[-1], self.out_channels)

    def collate(self, targets: Sequence[Tensor]) -> Tensor:
        """Batch the targets of several samples (override for variable-size targets)."""
        return torch.stack(list(targets))

    def to_device(self, target: Tensor, device: torch.device) -> Tensor:
        """Move a batched target to the training device."""
        return target.to(device, non_blocking=True)

    def predict(self, pred: Tensor) -> Tensor:
        """Turn raw head output into the task's prediction (for pictures and export)."""
        return pred

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` is true; 0 (with a gradient path) when nothing is valid."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def sample_mask(valid: Tensor | None, like: Tensor) -> Tensor:
    """Broadcast a per-sample mask [B] to the shape of ``like`` ([B, ...]); all-true when None."""
    if valid is None:
        return torch.ones_like(like, dtype=torch.bool)
    shape = (valid.shape[0],) + (1,) * (like.dim() - 1)
    return valid.view(shape).expand_as(like)
