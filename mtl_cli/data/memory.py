"""Refusing generated datasets that cannot fit in memory, before generating them."""

from __future__ import annotations

import os

from mtl_cli.errors import UserError

_GIB = 1024**3


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
