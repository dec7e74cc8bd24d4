"""Task heads on multi-scale features: pooling + linear for image-level tasks, a decoder for dense ones.

Every head reads a list of feature maps, shallow (high resolution) to deep (low
resolution): the outputs of the backbone stages its task sees. An image-level head
fuses them with its own decoder and pools the result. A dense head is a ``DenseDecoder`` (a
light feature pyramid that fuses the scales; the part ``shared_weights`` shares between
tasks) followed by a ``DenseProjection`` (the task's own output layer).

Decoders fuse the maps of output stride ``FINEST_STRIDE`` (4) and coarser: a full-width
block at stride 2 costs four times one at stride 4 and, measured on the shapes scenes,
learns less in the same time (the prediction is upsampled bilinearly to the input size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FINEST_STRIDE = 4
"""The finest output stride a decoder fuses; finer maps (a stride-2 stem) are passed over."""


def skipped_scales(strides: Sequence[int] | None, count: int) -> int:
    """How many of ``count`` maps (shallow to deep, with output ``strides``) a decoder passes over.

    Those finer than ``FINEST_STRIDE``, but never the deepest map; none when the strides are unknown.
    """
    if strides is None:
        return 0
    if len(strides) != count:
        raise ValueError(f"{count} feature maps but {len(strides)} strides")
    finer = sum(1 for s in strides if s < FINEST_STRIDE)
    return min(finer, count - 1)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DenseDecoder(nn.Module):
    """A light feature pyramid over the scales it is given; output at the finest scale it fuses.

    Top-down: the deepest map goes through a 1x1 lateral convolution and a 3x3 block;
    at each shallower scale the running map is upsampled (bilinear), added to that
    scale's lateral, and refined by a 3x3 block. All maps are ``out_channels`` wide,
    ``out_channels = max(mid_channels // 2, 8)``. With the maps' output ``strides`` known,
    maps finer than ``FINEST_STRIDE`` are passed over (``skipped_scales``); ``forward``
    still takes every map.
    """

    def __init__(self, in_channels: Sequence[int], mid_channels: int, strides: Sequence[int] | None = None) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError("a dense decoder needs at least one input scale")
        self.num_inputs = len(in_channels)
        self.skip = skipped_scales(strides, len(in_channels))
        self.in_channels = list(in_channels)[self.skip :]
        self.out_channels = max(mid_channels // 2, 8)
        width = self.out_channels
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in self.in_channels)
        self.blocks = nn.ModuleList(_conv_bn_relu(width, width) for _ in self.in_channels)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        if len(features) != self.num_inputs:
            raise ValueError(f"the decoder takes {self.num_inputs} feature maps, got {len(features)}")
        features = list(features)[self.skip :]
        x = self.blocks[-1](self.laterals[-1](features[-1]))
        for i in range(len(features) - 2, -1, -1):
            skip = self.laterals[i](features[i])
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.blocks[i](x + skip)
        return x


class ImageHead(nn.Module):
    """Global average and max pooling of a feature map, concatenated, then one linear layer.

    Given several scales it first fuses them with its own ``DenseDecoder`` and pools the
    fused finest map: an image-level label that depends on how much of the image each
    kind of object covers (the shapes ``cls`` label) needs per-pixel evidence, which the
    deepest, coarsest map alone does not keep. Given one map it pools that map. Max
    pooling keeps the response of small objects that averaging would dilute.
    """

    def __init__(
        self, in_channels: Sequence[int], mid_channels: int, out_channels: int, strides: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self.decoder = DenseDecoder(in_channels, mid_channels, strides) if len(in_channels) > 1 else None
        width = self.decoder.out_channels if self.decoder is not None else in_channels[0]
        self.fc = nn.Linear(2 * width, out_channels)

    def forward(self, features: Sequence[Tensor], out_size: tuple[int, int]) -> Tensor:
        x = self.decoder(features) if self.decoder is not None else features[-1]
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return self.fc(pooled)


class DenseProjection(nn.Module):
    """A 1x1 convolution of the finest feature map to the task's channels, resized to ``out_size``.

    The output is ``offset + scale * conv(x)``: a task whose targets sit far from zero
    (depth) starts at its typical value and moves in units of its spread.
    """

    def __init__(self, in_channels: int, out_channels: int, offset: float = 0.0, scale: float = 1.0) -> None:
        super().__init__()
        self.out = nn.Conv2d(in_channels, out_channels, 1)
        self.offset = offset
        self.scale = scale

    def forward(self, features: Sequence[Tensor], out_size: tuple[int, int]) -> Tensor:
        x = self.out(features[0])
        if self.scale != 1.0 or self.offset != 0.0:
            x = x * self.scale + self.offset
        return F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)


class DenseHead(nn.Module):
    """A ``DenseDecoder`` over the given scales, then a ``DenseProjection``: one dense task's own head."""

    def __init__(
        self,
        in_channels: Sequence[int],
        mid_channels: int,
        out_channels: int,
        offset: float = 0.0,
        scale: float = 1.0,
        strides: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.decoder = DenseDecoder(in_channels, mid_channels, strides)
        self.projection = DenseProjection(self.decoder.out_channels, out_channels, offset, scale)

    def forward(self, features: Sequence[Tensor], out_size: tuple[int, int]) -> Tensor:
        return self.projection([self.decoder(features)], out_size)
