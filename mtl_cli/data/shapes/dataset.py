"""The "shapes" dataset: generated scenes (optionally cached as ``.npz``) served as tensors."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mtl_cli.data.shapes.render import FORMAT_VERSION, TASK_NAMES, generate_scenes
from mtl_cli.errors import UserError
from mtl_cli.utils.files import atomic_write


def _cache_path(cache_dir: str | os.PathLike[str], num: int, image_size: int, seed: int, max_objects: int) -> Path:
    key = repr(("shapes", FORMAT_VERSION, int(num), int(image_size), int(seed), int(max_objects)))
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return Path(cache_dir) / f"shapes_v{FORMAT_VERSION}_{digest}.npz"


def _load_or_generate(
    num: int, image_size: int, seed: int, max_objects: int, cache_dir: str | os.PathLike[str] | None
) -> dict[str, np.ndarray]:
    if cache_dir is None:
        return generate_scenes(num, image_size, seed, max_objects)
    path = _cache_path(cache_dir, num, image_size, seed, max_objects)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {key: f[key] for key in f.files}
            if set(arrays) == {"image", *TASK_NAMES} and arrays["image"].shape == (num, 3, image_size, image_size):
                return arrays
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
            pass  # truncated / corrupt / foreign file: regenerate and replace it
    arrays = generate_scenes(num, image_size, seed, max_objects)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as exc:
        raise UserError(
            f"data.cache_dir={cache_dir}: cannot write the cache file {path} ({exc.strerror or exc}); "
            f"give a writable directory or drop data.cache_dir"
        ) from exc
    return arrays


class ShapesDataset(Dataset):
    """Dataset over generated scenes; item = {"image": float32 Tensor[3,H,W] normalised with mean/std, "cls": int64 scalar tensor,
    "seg": int64 [H,W], "depth": float32 [1,H,W], "normals": float32 [3,H,W], "edges": float32 [1,H,W], "multilabel": float32 [K],
    "det": float32 [S,5] box rows padded with label -1} restricted to the requested `tasks` (a sequence of
    task names among those seven keys).

    All scenes are generated (or loaded from ``cache_dir``) once in ``__init__`` and held
    as tensors; ``__getitem__`` only returns views. Items share memory with the dataset:
    do not modify them in place.
    """

    def __init__(
        self,
        num: int,
        image_size: int,
        seed: int,
        tasks: Sequence[str],
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.25, 0.25, 0.25),
        cache_dir: str | None = None,
        max_objects: int = 3,
    ) -> None:
        """Generate (or load from ``cache_dir``) ``num`` scenes of ``image_size``^2 pixels.

        Args:
            num: number of scenes.
            image_size: height = width in pixels.
            seed: generator seed (use different seeds for train / val).
            tasks: label keys to expose, a subset of :data:`TASK_NAMES`.
            mean, std: per-channel image normalisation, ``(image - mean) / std``.
            cache_dir: if given, an ``.npz`` cache of the raw arrays is read / written there.
            max_objects: maximum number of objects per scene.
        """
        tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
        unknown = [t for t in tasks if t not in TASK_NAMES]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; expected a subset of {TASK_NAMES}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError("mean and std must have 3 entries (one per RGB channel)")
        if any(float(x) <= 0 for x in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.tasks: tuple[str, ...] = tuple(dict.fromkeys(tasks))
        self.num = int(num)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.max_objects = int(max_objects)

        arrays = _load_or_generate(num, image_size, seed, max_objects, cache_dir)
        image = torch.from_numpy(np.ascontiguousarray(arrays["image"], dtype=np.float32))
        mean_t = torch.tensor([float(x) for x in mean], dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor([float(x) for x in std], dtype=torch.float32).view(1, 3, 1, 1)
        image.sub_(mean_t).div_(std_t)  # owns its memory (fresh array), so in-place is safe
        self._image = image
        self._labels: dict[str, torch.Tensor] = {
            t: torch.from_numpy(np.ascontiguousarray(arrays[t])) for t in self.tasks
        }

    def __len__(self) -> int:
        """Number of scenes."""
        return self._image.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Return the normalised image and the requested labels of scene ``index`` (views)."""
        item = {"image": self._image[index]}
        for t, v in self._labels.items():
            item[t] = v[index]
        return item
