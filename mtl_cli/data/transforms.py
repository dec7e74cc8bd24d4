"""Joint transforms: one geometry applied to the image and, by each task's kind, to every label.

* Random scale-crop: zoom in by ``s`` (crop ``H/s x W/s``, resize back to ``H x W``).
* Horizontal flip.
* The image is resampled bilinearly; each label follows through its task kind's
  ``transform_label`` (e.g. class maps nearest-neighbour, normals renormalised with the x
  component negated on a flip, depth divided by the zoom).
* Photometric jitter (brightness, contrast, saturation, hue) on the image only, then
  normalisation with the dataset's mean / std.

All randomness comes from the ``torch.Generator`` passed per sample (see
``AugmentSeedSampler``), so a fixed seed gives the same augmentations whatever the
number of DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from mtl_cli.tasks.geometry import Geometry
from mtl_cli.tasks.labels import LabelSpec


@dataclass(frozen=True)
class Augment:
    """Training augmentation settings (see ``AugmentConfig`` in the config schema)."""

    scale: tuple[float, float] = (1.0, 1.0)
    hflip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Augment:
        return cls(
            scale=(float(cfg["scale"][0]), float(cfg["scale"][1])),
            hflip=bool(cfg["hflip"]),
            brightness=float(cfg["brightness"]),
            contrast=float(cfg["contrast"]),
            saturation=float(cfg["saturation"]),
            hue=float(cfg["hue"]),
        )

    @property
    def active(self) -> bool:
        """Whether any random step is switched on."""
        return self.scale[1] > 1.0 or self.hflip or any((self.brightness, self.contrast, self.saturation, self.hue))


def apply_geometry(item: dict[str, Any], specs: Mapping[str, LabelSpec], geometry: Geometry) -> dict[str, Any]:
    """``item`` with ``geometry`` applied to its image (bilinear) and, by their task kinds, its labels."""
    out = dict(item)
    out["image"] = geometry.mirror(geometry.bilinear(item["image"]))
    for name, spec in specs.items():
        out[name] = spec.transform(item[name], geometry)
    return out


def resize_sample(item: dict[str, Any], specs: Mapping[str, LabelSpec], size: tuple[int, int]) -> dict[str, Any]:
    """Resize the image and every dense target of ``item`` to ``size`` (no zoom: depth values unchanged)."""
    h, w = item["image"].shape[-2:]
    if (h, w) == tuple(size):
        return item
    return apply_geometry(item, specs, Geometry(size=(int(size[0]), int(size[1])), box=(0, 0, h, w)))


class JointTransform:
    """Augment (when given a generator) and normalise one sample ``{"image", <task>: target}``.

    ``specs`` carry each target's task kind, which moves the target with the image
    (``Task.transform_label``); image-level targets do not move.
    """

    def __init__(
        self, specs: Mapping[str, LabelSpec], augment: Augment, mean: Sequence[float], std: Sequence[float]
    ) -> None:
        self.specs = dict(specs)
        self.augment = augment
        self.mean = torch.tensor([float(m) for m in mean]).view(3, 1, 1)
        self.std = torch.tensor([float(s) for s in std]).view(3, 1, 1)

    def __call__(self, item: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        if generator is not None and self.augment.active:
            item = self.random_geometry(item, generator)
            item["image"] = self.jitter(item["image"], generator)
        item["image"] = (item["image"] - self.mean) / self.std
        return item

    def random_geometry(self, item: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
        """Random scale-crop, then random horizontal flip, on the image and every target."""
        lo, hi = self.augment.scale
        u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
        scale = lo + (hi - lo) * u[0]
        size = tuple(item["image"].shape[-2:])
        h, w = size
        ch, cw = max(1, round(h / scale)), max(1, round(w / scale))
        box = (int(u[1] * (h - ch + 1)), int(u[2] * (w - cw + 1)), ch, cw)
        flip = self.augment.hflip and u[3] < 0.5
        zoom = scale > 1.0
        geometry = Geometry(size=size, box=box if zoom else None, zoom=scale if zoom else 1.0, flip=flip)
        return apply_geometry(item, self.specs, geometry)

    def jitter(self, image: Tensor, generator: torch.Generator) -> Tensor:
        """Random brightness, contrast, saturation and hue changes (image in [0, 1])."""
        import torchvision.transforms.v2.functional as TF  # only when jitter is on: keeps start-up light

        a = self.augment
        u = (torch.rand(4, generator=generator, dtype=torch.float64) * 2 - 1).tolist()
        if a.brightness:
            image = TF.adjust_brightness(image, 1.0 + a.brightness * u[0])
        if a.contrast:
            image = TF.adjust_contrast(image, 1.0 + a.contrast * u[1])
        if a.saturation:
            image = TF.adjust_saturation(image, 1.0 + a.saturation * u[2])
        if a.hue:
            image = TF.adjust_hue(image, a.hue * u[3])
        return image


class TransformedDataset(Dataset):
    """``base[i]`` passed through a ``JointTransform``.

    A key ``(index, seed)`` (from ``AugmentSeedSampler``) augments sample ``index`` with a
    generator seeded by ``seed``; a plain index only normalises. ``augment=False`` (the
    validation set) never augments.
    """

    def __init__(self, base: Dataset, transform: JointTransform, augment: bool) -> None:
        self.base = base
        self.transform = transform
        self.augment = augment and transform.augment.active

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        generator = torch.Generator().manual_seed(seed) if self.augment and seed is not None else None
        return self.transform(self.base[index], generator)


class AugmentSeedSampler(Sampler[tuple[int, int]]):
    """Pairs each index of a base sampler with an augmentation seed.

    The seed of sample ``i`` in epoch ``e`` depends only on ``(seed, e, i)``, so the
    augmentations do not depend on worker scheduling, on how the data is sharded across
    DDP ranks, or on the order the base sampler yields. ``set_epoch`` is passed on to
    the base sampler (e.g. a ``DistributedSampler``).
    """

    def __init__(self, base: Sampler[int], num_samples: int, seed: int) -> None:
        self.base = base
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        seeds = torch.randint(0, 2**62, (self.num_samples,), generator=generator).tolist()
        return iter((index, seeds[index]) for index in self.base)
