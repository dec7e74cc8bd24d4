"""Delta-m: a multi-task run's mean relative change over single-task baselines, and baseline matching.

For task metrics ``j = 1..n`` with the multi-task value ``M_m,j``, the single-task value
``M_b,j`` and ``l_j = 1`` when lower is better::

    delta_m = 1/n * sum_j (-1)^{l_j} * (M_m,j - M_b,j) / M_b,j * 100

Positive means better than the single-task models on average.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mtl_cli.reporting.runs import Metrics, RunRecord
from mtl_cli.utils.mappings import key_under

# Keys that legitimately differ between a multi-task run and its single-task baselines.
BASELINE_IGNORED = ("tasks", "loss.weights", "trainer.monitor", "trainer.resume", "sweep", "logger")


class DeltaMError(ValueError):
    """Delta-m cannot be computed (a baseline metric is missing, zero or not finite)."""


def delta_m(metrics: Metrics, baselines: Metrics, directions: Mapping[str, Mapping[str, bool]]) -> float:
    """Delta-m in percent over every metric of every task in ``metrics``."""
    terms = []
    for task, values in metrics.items():
        for name, value in values.items():
            base = baselines.get(task, {}).get(name)
            if base is None:
                raise DeltaMError(f"no baseline value for {task}.{name}")
            if base == 0 or not math.isfinite(base):
                raise DeltaMError(f"baseline {task}.{name} is {base}, so the relative change is undefined")
            higher = directions.get(task, {}).get(name)
            if higher is None:
                raise DeltaMError(f"the direction of {task}.{name} is not recorded")
            sign = 1.0 if higher else -1.0
            terms.append(sign * (value - base) / base * 100.0)
    if not terms:
        raise DeltaMError("the run has no metrics")
    return sum(terms) / len(terms)


@dataclass
class BaselineMatch:
    """The single-task run chosen for one task, and the config keys in which it differs."""

    run: RunRecord
    differences: list[str]


def config_distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The flattened config keys (outside ``BASELINE_IGNORED``) whose values differ."""
    keys = sorted(k for k in set(a) | set(b) if not key_under(k, BASELINE_IGNORED))
    return [k for k in keys if a.get(k) != b.get(k)]


def match_baselines(
    tasks: Sequence[str], config: Mapping[str, Any], candidates: Sequence[RunRecord]
) -> dict[str, BaselineMatch]:
    """For each task, the completed single-task run whose config is closest to ``config``.

    Closest = fewest differing flattened config keys, ignoring the task selection, the loss
    weights, the monitor, resume and sweep settings; ties go to the first candidate.
    Tasks without any single-task run are left out.
    """
    matches = {}
    for task in tasks:
        best: BaselineMatch | None = None
        for run in candidates:
            if not run.completed or run.tasks != [task]:
                continue
            diff = config_distance(config, run.config)
            if best is None or len(diff) < len(best.differences):
                best = BaselineMatch(run, diff)
        if best is not None:
            matches[task] = best
    return matches


def baseline_metrics(matches: Mapping[str, BaselineMatch], which: str = "final") -> dict[str, dict[str, float]]:
    """``{task: metrics of its baseline run}``."""
    return {task: dict(m.run.metrics(which).get(task, {})) for task, m in matches.items()}


def baseline_directions(matches: Mapping[str, BaselineMatch]) -> dict[str, dict[str, bool]]:
    """The metric directions recorded by the baseline runs."""
    return {task: dict(m.run.directions.get(task, {})) for task, m in matches.items()}
