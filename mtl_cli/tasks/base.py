"""The Task interface: everything the library needs to know about one task kind."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtl_cli.errors import UserError
from mtl_cli.tasks.geometry import Geometry
from mtl_cli.tasks.metrics import MetricAccumulator

if TYPE_CHECKING:
    from mtl_cli.tasks.labels import LabelSpec

Picture = tuple[np.ndarray, dict[str, Any]]
"""An ``[H, W]`` or ``[H, W, 3]`` array and the ``imshow`` options that show it."""

Batched = Any
"""A batched target: a tensor, or a list / tuple of tensors for variable-size labels."""


class Task(abc.ABC):
    """One learning task: its head, loss and metrics, and everything about its labels.

    Subclasses set ``kind`` (the ``tasks.<name>.kind`` value that selects them),
    ``dense`` (per-pixel labels and output at input resolution, or one per image),
    ``primary_metric`` (used for "best" checkpoints by default) and implement
    ``out_channels``, ``loss``, ``metrics`` and ``missing_label``.

    The class-level label methods take the task's ``LabelSpec`` (the data's view of the
    task: name, class count, ignore index, dataset options), so datasets and transforms
    use them without building the task: reading and checking a label
    (``label_from_array``, ``label_from_png``, ``label_from_cells``), filling a missing
    one (``missing_label``) and moving it with the image (``transform_label``). Instances
    batch targets (``collate``, ``to_device``) and draw them (``draw``, ``describe``).
    """

    kind: ClassVar[str]
    dense: ClassVar[bool]
    primary_metric: ClassVar[str]
    losses: ClassVar[tuple[str, ...]] = ("default",)
    needs_num_classes: ClassVar[bool] = False
    output_offset: float = 0.0
    output_scale: float = 1.0
    trains_on_resized_inputs: ClassVar[bool] = True
    """Whether ``prediction_at`` can score an output for a resized input (``trainer.progressive_resize``)."""

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        self.name = name
        self.settings = dict(settings)
        self.loss_name = str(self.settings.get("loss", "default"))
        if self.loss_name not in self.losses:
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

    def trivial_output(self, targets: Sequence[Tensor]) -> Tensor | None:
        """The raw output ``[C]`` of the best input-independent predictor for ``targets``.

        The trivial baseline a trained head must beat (majority class, mean depth, ...),
        computed from the labels themselves; ``None`` when the kind defines none.
        """
        return None

    def trivial_metrics(self, targets: Sequence[Tensor]) -> dict[str, float] | None:
        """The metrics of ``trivial_output`` (the same output for every image and pixel) on ``targets``."""
        constant = self.trivial_output(targets)
        if constant is None:
            return None
        accumulator = self.metrics()
        for target in targets:
            if self.dense:
                shape = (target.shape[0], constant.numel(), *target.shape[-2:])
                pred = constant.float().view(1, -1, 1, 1).expand(shape)
            else:
                pred = constant.float().view(1, -1).expand(target.shape[0], -1)
            accumulator.update(pred.contiguous(), target)
        return accumulator.compute()

    def build_head(self, in_channels: Sequence[int], strides: Sequence[int] | None = None) -> nn.Module:
        """The task-specific output head on feature maps with ``in_channels`` and output ``strides`` (shallow to deep).

        A dense head fuses them (``models.heads.DenseDecoder``); an image-level head fuses them
        too, then pools. A dense output starts at ``output_offset`` and moves in units of
        ``output_scale``.
        """
        from mtl_cli.models.heads import DenseHead, ImageHead

        if self.dense:
            return DenseHead(
                in_channels, self.head_channels, self.out_channels, self.output_offset, self.output_scale, strides
            )
        return ImageHead(in_channels, self.head_channels, self.out_channels, strides)

    def build_projection(self, in_channels: int) -> nn.Module:
        """The task's own layer on a decoder shared with the other tasks (``branch_at=decoder``).

        Default: a 1x1 convolution for dense tasks, pooling and a linear layer for image-level ones.
        """
        from mtl_cli.models.heads import DenseProjection, ImageHead

        if self.dense:
            return DenseProjection(in_channels, self.out_channels, self.output_offset, self.output_scale)
        return ImageHead([in_channels], self.head_channels, self.out_channels)

    # ------------------------------------------------------------------ labels (class level)
    label_suffixes: ClassVar[tuple[str, ...]] = (".npy",)
    """File suffixes a per-image label file of this kind may have (folder datasets)."""

    @classmethod
    @abc.abstractmethod
    def missing_label(cls, spec: LabelSpec, size: tuple[int, int]) -> Tensor:
        """The target of a sample without a label (``size`` = image ``(H, W)``): nothing in it counts."""

    @classmethod
    def label_from_array(cls, spec: LabelSpec, array: np.ndarray, path: Path, size: tuple[int, int]) -> Tensor:
        """Check a label array read from ``path`` against the image ``size``; return the target tensor.

        Raises ``DataFileError`` naming the file when shape, dtype or values are wrong.
        """
        raise UserError(f"{path}: task {spec.name} ({cls.kind}) does not read labels from per-image files")

    @classmethod
    def label_from_png(cls, spec: LabelSpec, array: np.ndarray) -> np.ndarray:
        """A decoded label PNG (``[H, W]`` integers) as the array a ``.npy`` label file would hold."""
        return array

    @classmethod
    def csv_columns(cls, spec: LabelSpec) -> int:
        """How many label columns a CSV row of this kind has (image-level kinds)."""
        raise UserError(f"task {spec.name} ({cls.kind}) does not read labels from a CSV file")

    @classmethod
    def label_from_cells(cls, spec: LabelSpec, cells: Sequence[str]) -> Tensor | None:
        """The target in one CSV row's label ``cells``; ``None`` = no label; ``ValueError`` if malformed."""
        raise UserError(f"task {spec.name} ({cls.kind}) does not read labels from a CSV file")

    @classmethod
    def cells_expected(cls, spec: LabelSpec) -> str:
        """What the label cells of a CSV row should hold (for the error of a malformed row)."""
        return f"{cls.csv_columns(spec)} label value(s)"

    @classmethod
    def transform_label(cls, spec: LabelSpec, target: Tensor, geometry: Geometry) -> Tensor:
        """The target after the sample's crop / resize / zoom / flip.

        Image-level labels do not move. Dense labels default to a per-pixel map whose
        values do not depend on the geometry: nearest-neighbour resampling (labels stay
        exact; ignore / invalid pixels stay so), then mirroring.
        """
        if not cls.dense:
            return target
        return geometry.mirror(geometry.nearest(target))

    # ------------------------------------------------------------------ batching and pictures
    def collate(self, targets: Sequence[Tensor]) -> Batched:
        """Batch the targets of several samples: stacked by default.

        Override for variable-size targets (e.g. per-image box lists): return a list and
        ``to_device`` moves every element.
        """
        return torch.stack(list(targets))

    def to_device(self, target: Batched, device: torch.device) -> Batched:
        """Move a batched target (a tensor, or a list / tuple of them) to the training device."""
        if isinstance(target, (list, tuple)):
            return type(target)(self.to_device(t, device) for t in target)
        return target.to(device, non_blocking=True)

    def predict(self, pred: Tensor) -> Tensor:
        """Turn raw head output into the task's prediction (for pictures and export)."""
        return pred

    def prediction_at(self, pred: Tensor, size: tuple[int, int]) -> Tensor:
        """The raw output for an input resized in training, brought to the label size ``size``.

        Dense outputs are resampled bilinearly (as the heads bring their finest map to the
        input size), so labels are never resampled; image-level outputs do not depend on
        the input size.
        """
        if not self.dense or tuple(pred.shape[-2:]) == tuple(size):
            return pred
        return F.interpolate(pred, size=size, mode="bilinear", align_corners=False)

    def metric_input(self, pred: Tensor) -> Any:
        """What validation passes to the metric accumulator for the raw head output ``pred``.

        Default: the raw output itself. Kinds whose metrics need post-processed output
        (e.g. decoded detections) override this; training never calls it.
        """
        return pred

    def draw(self, value: Tensor) -> Picture:
        """A picture of one dense target or prediction (``predict`` output, float, on the CPU).

        Default: the first channel as grey levels in [0, 1].
        """
        return value[0].numpy(), {"cmap": "gray", "vmin": 0, "vmax": 1}

    draws_on_image: ClassVar[bool] = False
    """Whether ``draw_on_image`` pictures targets / predictions over the input image (e.g. boxes)."""

    def draw_on_image(self, image: Tensor, value: Tensor) -> Picture:
        """One target or prediction (``predict`` output, CPU) drawn over an RGB ``image`` ``[3, H, W]`` in [0, 1]."""
        raise NotImplementedError(f"task kind {self.kind} does not draw on the image")

    def describe(self, value: Tensor) -> str:
        """One image-level target or prediction as text for a picture's title ("" = not shown)."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def map_target(array: np.ndarray) -> Tensor:
    """A checked ``[H, W]`` or ``[H, W, C]`` label array as a float32 ``[C, H, W]`` target."""
    chw = array.reshape(array.shape[0], array.shape[1], -1).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(chw, dtype=np.float32))


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
