"""Finding, reading and preparing the images to predict on."""

from __future__ import annotations

import glob
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from mtl_cli.data.labels import pil_image_target
from mtl_cli.errors import UserError
from mtl_cli.tasks.geometry import Geometry

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".gif")


@dataclass(frozen=True)
class InputImage:
    """One input file and the name its outputs are written under (unique within a run)."""

    path: Path
    name: str


class UnreadableImage(Exception):
    """An input file that is not an image this tool can read (the message says why)."""


def find_images(spec: str) -> list[InputImage]:
    """The files ``spec`` names: one file, every file in a folder (recursively) or a glob pattern.

    Output names are the files' paths relative to the folder (or the pattern's fixed part)
    without suffix, with ``/`` written as ``__`` (and ``_<suffix>`` added where two would clash).
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return [InputImage(path, path.stem)]
    if path.is_dir():
        root, files = path, sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    elif glob.has_magic(spec):
        root = _fixed_prefix(path)
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    else:
        raise UserError(f"input={spec}: no such file or folder; give an image, a folder or a glob pattern")
    if not files:
        raise UserError(f"input={spec}: no files found")
    names = [_output_name(f, root) for f in files]
    clashes = {n for n in names if names.count(n) > 1}
    return [InputImage(f, f"{n}_{f.suffix.lstrip('.')}" if n in clashes else n) for f, n in zip(files, names)]


def _fixed_prefix(pattern: Path) -> Path:
    """The leading folders of a glob pattern that hold no wildcard."""
    parts = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _output_name(file: Path, root: Path) -> str:
    try:
        relative = file.relative_to(root)
    except ValueError:
        relative = Path(file.name)
    return "__".join(relative.with_suffix("").parts)


def read_image(path: Path) -> Tensor:
    """The image at ``path`` as an RGB float ``[3, H, W]`` tensor in [0, 1]; ``UnreadableImage`` if it is none."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UnreadableImage(f"unsupported file type {path.suffix or '(no suffix)'}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                rgb = image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"not a readable image ({exc.__class__.__name__})") from exc
    return pil_image_target(rgb)


def prepare(image: Tensor, size: tuple[int, int] | None, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Resize ``image`` to ``size`` as the training data was (when given) and normalise it."""
    if size is not None:
        h, w = image.shape[-2:]
        image = Geometry(size=size, box=(0, 0, h, w)).bilinear(image)
    return (image - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
