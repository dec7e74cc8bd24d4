"""Runs that differ only in ``trainer.seed``, read as one configuration: mean and spread of every value."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SEED_KEY = "trainer.seed"
IGNORED = (SEED_KEY, "trainer.resume")


@dataclass
class SeedGroup:
    """The rows of one configuration trained with different seeds."""

    label: str
    rows: list
    seeds: list[str]


def group_by_seed(rows: Sequence, label: Callable[[object], str]) -> list[SeedGroup]:
    """Group completed rows whose recorded config is the same once ``trainer.seed`` is left out.

    ``label(row)`` names a group (from its first row); groups keep first-seen order.
    """
    groups: dict[tuple, SeedGroup] = {}
    for row in rows:
        run = row.run
        if not run.completed:
            continue
        key = (tuple(run.tasks), tuple(sorted((k, repr(v)) for k, v in run.config.items() if k not in IGNORED)))
        seed = str(run.config.get(SEED_KEY, run.overrides.get(SEED_KEY, "?")))
        if key not in groups:
            groups[key] = SeedGroup(label(row), [], [])
        groups[key].rows.append(row)
        groups[key].seeds.append(seed)
    return list(groups.values())


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and count of the finite ``values``."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, 0
    spread = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return statistics.fmean(finite), spread, len(finite)
