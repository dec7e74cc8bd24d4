"""One sample's geometric change, shared by its image and every label that follows it.

A ``Geometry`` describes a crop resized back to a size, a zoom factor and a horizontal
flip; each task's ``transform_label`` applies it to its own label with the resampling
(bilinear or nearest-neighbour) and the value changes (e.g. depth divided by the zoom)
its kind needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

Box = tuple[int, int, int, int]  # top, left, height, width


@dataclass(frozen=True)
class Geometry:
    """Crop ``box`` (``None``: no resampling) and resize it to ``size``; then mirror when ``flip``.

    ``zoom`` is how many times closer the scene came (``> 1`` for a zoom-in scale-crop;
    1 for a plain resize), for labels whose values depend on the distance such as depth.
    """

    size: tuple[int, int]
    box: Box | None = None
    zoom: float = 1.0
    flip: bool = False

    def crop(self, target: Tensor) -> Tensor:
        """The box of a ``[..., H, W]`` map (the map itself without a box)."""
        if self.box is None:
            return target
        top, left, h, w = self.box
        return target[..., top : top + h, left : left + w]

    def resizes(self, crop: Tensor) -> bool:
        """Whether ``crop`` (from :meth:`crop`) still has to be resized to ``size``."""
        return self.box is not None and tuple(crop.shape[-2:]) != tuple(self.size)

    def resize_bilinear(self, crop: Tensor) -> Tensor:
        """A floating ``[C, h, w]`` crop bilinearly resized to ``size`` (antialiased when shrinking)."""
        shrink = crop.shape[-2] > self.size[0] or crop.shape[-1] > self.size[1]
        return F.interpolate(crop[None], size=self.size, mode="bilinear", align_corners=False, antialias=shrink)[0]

    def resize_nearest(self, crop: Tensor) -> Tensor:
        """A ``[..., h, w]`` crop resized to ``size`` by nearest-neighbour sampling (integer maps too)."""
        batch = crop.reshape(1, -1, *crop.shape[-2:])
        if not batch.is_floating_point():
            batch = batch.double()  # exact for integer labels; interpolate has no integer kernels
        out = F.interpolate(batch, size=self.size, mode="nearest-exact")
        return out.reshape(*crop.shape[:-2], *self.size).to(crop.dtype)

    def bilinear(self, target: Tensor) -> Tensor:
        """Crop and bilinearly resize a floating ``[C, H, W]`` map (values not rescaled)."""
        crop = self.crop(target)
        return self.resize_bilinear(crop) if self.resizes(crop) else crop

    def nearest(self, target: Tensor) -> Tensor:
        """Crop and nearest-neighbour resize a ``[..., H, W]`` map (values not rescaled)."""
        crop = self.crop(target)
        return self.resize_nearest(crop) if self.resizes(crop) else crop

    def mirror(self, target: Tensor) -> Tensor:
        """The map mirrored left-right when ``flip`` (values unchanged)."""
        return target.flip(-1) if self.flip else target
