"""Task heads: global-pool + linear for image-level tasks, a light decoder for dense ones.

A dense head is a ``DenseDecoder`` (the part ``shared_weights`` shares between tasks)
followed by a ``DenseProjection`` (the task's own output layer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ImageHead(nn.Module):
    """Global average and max pooling, concatenated, followed by one linear layer.

    Max pooling keeps the response of small objects that averaging over the whole
    image would dilute.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * in_channels, out_channels)

    def forward(self, features: Tensor, out_size: tuple[int, int]) -> Tensor:
        pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
        return self.fc(pooled)


class DenseDecoder(nn.Module):
    """Two conv blocks with one 2x upsampling between them; ``out_channels = max(mid // 2, 8)``."""

    def __init__(self, in_channels: int, mid_channels: int) -> None:
        super().__init__()
        self.out_channels = max(mid_channels // 2, 8)
        self.block1 = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(mid_channels, self.out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(self.out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, features: Tensor) -> Tensor:
        x = self.block1(features)
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.block2(x)


class DenseProjection(nn.Module):
    """A 1x1 convolution to the task's channels, then bilinear resizing to ``out_size``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.out = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, features: Tensor, out_size: tuple[int, int]) -> Tensor:
        return F.interpolate(self.out(features), size=out_size, mode="bilinear", align_corners=False)


class DenseHead(nn.Module):
    """A ``DenseDecoder`` then a ``DenseProjection``: one dense task's own decoder."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.decoder = DenseDecoder(in_channels, mid_channels)
        self.projection = DenseProjection(self.decoder.out_channels, out_channels)

    def forward(self, features: Tensor, out_size: tuple[int, int]) -> Tensor:
        return self.projection(self.decoder(features), out_size)
