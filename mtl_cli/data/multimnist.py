"""MultiMNIST (Sener & Koltun, 2018): two overlapping handwritten digits per image.

Each image puts one digit (28 x 28) at the top-left and another at the bottom-right of a
36 x 36 canvas, each shifted by up to 2 pixels towards the centre, and is resized to
``data.image_size``. Tasks: ``left`` and ``right`` (the two digits' classes) and
``mask``, a per-pixel map of which digit a pixel belongs to (0 background, 1 left,
2 right: the brighter digit wins where they overlap; a pixel is background when both are
below half intensity). The composite image is the pixelwise maximum of the two digits.

Digits come from ``data.source``: ``digits`` (default, offline) uses the 1797 real
handwritten digits that ship inside scikit-learn (``sklearn.datasets.load_digits``,
8 x 8, upsampled to 28 x 28; every fifth digit is held out for validation); ``mnist`` uses
torchvision's MNIST under ``data.root`` (downloaded there only with ``data.download=true``).
Everything is deterministic given ``data.seed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import Dataset

from mtl_cli.errors import UserError
from mtl_cli.tasks.labels import LabelSpec

CANVAS = 36
DIGIT = 28
MAX_SHIFT = 2
THRESHOLD = 0.5
CHUNK = 1024  # images composed at a time
SOURCES = ("digits", "mnist")


def sklearn_digits(train: bool) -> tuple[Tensor, Tensor]:
    """scikit-learn's handwritten digits as ``([N, 28, 28] in [0, 1], labels [N])``; every fifth is validation."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError(
            "data=multimnist builds its images from scikit-learn's digits; install them with "
            "pip install 'mtl-cli[multimnist]' (or use data.source=mnist)"
        ) from None
    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    held_out = torch.arange(len(labels)) % 5 == 0
    keep = ~held_out if train else held_out
    images = F.interpolate(images[keep][:, None], size=(DIGIT, DIGIT), mode="bilinear", align_corners=False)
    return images[:, 0].clamp_(0.0, 1.0), labels[keep]


def mnist_digits(root: str | None, train: bool, download: bool) -> tuple[Tensor, Tensor]:
    """torchvision's MNIST split as ``([N, 28, 28] in [0, 1], labels [N])``."""
    from torchvision.datasets import MNIST

    if root is None:
        raise UserError("data.source=mnist needs data.root=<folder> holding MNIST/raw (or to download it into)")
    try:
        mnist = MNIST(root, train=train, download=download)
    except RuntimeError as exc:
        if "not found" in str(exc):
            raise UserError(
                f"MNIST not found under {Path(root) / 'MNIST' / 'raw'}; set data.download=true to download it "
                f"there, or point data.root at a folder that holds MNIST/raw"
            ) from None
        raise UserError(f"cannot read MNIST under {root}: {' '.join(str(exc).split())}") from None
    except (OSError, ValueError, AssertionError) as exc:
        raise UserError(f"cannot read or download MNIST under {root}: {' '.join(str(exc).split()) or exc!r}") from None
    return mnist.data.float() / 255.0, mnist.targets.long()


def compose_pairs(digits: Tensor, labels: Tensor, num: int, seed: int, size: int) -> dict[str, Tensor]:
    """``num`` two-digit images at ``size`` x ``size``, deterministic in ``seed``.

    Returns ``image`` float32 [num, 1, S, S] in [0, 1], ``left`` / ``right`` int64 [num],
    ``mask`` int64 [num, S, S].
    """
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    left = torch.randint(0, n, (num,), generator=g)
    right = (left + torch.randint(1, n, (num,), generator=g)) % n  # always a different image
    shifts = torch.randint(0, MAX_SHIFT + 1, (num, 2, 2), generator=g)
    image = torch.empty(num, 1, size, size)
    mask = torch.empty(num, size, size, dtype=torch.int64)
    for start in range(0, num, CHUNK):
        part = slice(start, min(start + CHUNK, num))
        layers = _place(digits, left[part], right[part], shifts[part], size)
        image[part, 0], owner = layers.max(dim=1)
        mask[part] = torch.where(image[part, 0] < THRESHOLD, 0, owner + 1)
    return {"image": image, "left": labels[left], "right": labels[right], "mask": mask}


def _place(digits: Tensor, left: Tensor, right: Tensor, shifts: Tensor, size: int) -> Tensor:
    """The two digit layers ``[n, 2, size, size]``: left digit near the top-left corner, right near the bottom-right."""
    layers = torch.zeros(len(left), 2, CANVAS, CANVAS)
    far = CANVAS - DIGIT
    for slot, (chosen, origin, sign) in enumerate(((left, 0, 1), (right, far, -1))):
        for dr in range(MAX_SHIFT + 1):
            for dc in range(MAX_SHIFT + 1):
                rows = ((shifts[:, slot, 0] == dr) & (shifts[:, slot, 1] == dc)).nonzero()[:, 0]
                r, c = origin + sign * dr, origin + sign * dc
                layers[rows, slot, r : r + DIGIT, c : c + DIGIT] = digits[chosen[rows]]
    if size != CANVAS:
        layers = F.interpolate(layers, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return layers.clamp_(0.0, 1.0)


class MultiMNISTDataset(Dataset):
    """Pre-composed two-digit images; items hold a 3-channel image and the selected tasks' targets."""

    def __init__(self, arrays: Mapping[str, Tensor], tasks: list[str]) -> None:
        self.image = arrays["image"]
        self.targets = {name: arrays[name] for name in tasks}

    def __len__(self) -> int:
        return self.image.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"image": self.image[index].expand(3, -1, -1)}
        for name, target in self.targets.items():
            item[name] = target[index]
        return item


def build_multimnist(
    data_cfg: DictConfig, specs: Mapping[str, LabelSpec]
) -> tuple[MultiMNISTDataset, MultiMNISTDataset]:
    """Train and validation MultiMNIST sets of ``data.num_train`` / ``data.num_val`` images."""
    source = data_cfg.source or "digits"
    if source not in SOURCES:
        raise UserError(f"data.source={source}: MultiMNIST digits come from 'digits' (scikit-learn) or 'mnist'")
    if data_cfg.augment.hflip:
        raise UserError(
            "data=multimnist: a horizontal flip would swap the left and right digits; keep data.augment.hflip=false"
        )
    if data_cfg.num_train is None or data_cfg.num_val is None:
        raise UserError("data=multimnist generates its images: set data.num_train and data.num_val")

    def split(train: bool, num: int, seed: int) -> MultiMNISTDataset:
        if source == "digits":
            digits, labels = sklearn_digits(train)
        else:
            digits, labels = mnist_digits(data_cfg.root, train, data_cfg.download)
        return MultiMNISTDataset(compose_pairs(digits, labels, num, seed, data_cfg.image_size), list(specs))

    return split(True, data_cfg.num_train, data_cfg.seed), split(False, data_cfg.num_val, data_cfg.seed + 1)
