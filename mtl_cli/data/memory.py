"""Refusing generated datasets that cannot fit in memory, before generating them (and before a run starts)."""

from __future__ import annotations

import os
from typing import Any

from mtl_cli.errors import UserError

_GIB = 1024**3

# Bytes per generated sample: (fixed, per pixel of data.image_size^2).
# shapes: image (3 float32), seg (int64), depth, normals (3) and edges (float32) = 40 bytes a
# pixel, and the rendering holds about as much again in temporaries; multimnist: the image
# (float32) and the mask (int64).
SAMPLE_BYTES = {"shapes": (48, 80), "multimnist": (16, 12)}


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable``), ``None`` where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(dataset: str, num_samples: int, bytes_per_sample: int, available: int | None = None) -> None:
    """Refuse (``UserError``, with the estimate) to generate ``num_samples`` that need more than the free memory.

    ``available`` defaults to ``available_memory()``; where that is unknown nothing is refused.
    """
    needed = num_samples * bytes_per_sample
    free = available_memory() if available is None else available
    if free is not None and needed > free:
        raise UserError(
            f"data={dataset}: {num_samples} samples of this size need about {needed / _GIB:.1f} GiB of memory, "
            f"but only {free / _GIB:.1f} GiB is free; lower data.num_train / data.num_val or data.image_size"
        )


def check_generated_data_fits(data: Any, available: int | None = None) -> None:
    """``check_fits`` for the built-in generated datasets (``data.name`` in ``SAMPLE_BYTES``); others pass."""
    if data.name not in SAMPLE_BYTES or data.num_train is None or data.num_val is None:
        return
    fixed, per_pixel = SAMPLE_BYTES[data.name]
    check_fits(data.name, data.num_train + data.num_val, fixed + per_pixel * data.image_size**2, available)
