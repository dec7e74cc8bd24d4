"""Δm of each epoch against the single-task runs in ``sweep.baselines``, for the experiment trackers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from omegaconf import DictConfig

from mtl_cli.engine.records import Metrics, config_record
from mtl_cli.errors import UserError, one_line
from mtl_cli.reporting import (
    DeltaMError,
    baseline_directions,
    baseline_metrics,
    delta_m,
    load_runs,
    match_baselines,
)
from mtl_cli.utils.mappings import flatten_dict

log = logging.getLogger("mtl_cli")


@dataclass
class Baselines:
    """The matched single-task runs' final metrics and every metric's direction."""

    metrics: dict[str, dict[str, float]]
    directions: dict[str, dict[str, bool]]

    def delta_m(self, metrics: Metrics) -> float | None:
        """Δm in percent of ``metrics`` (``{task: {metric: value}}``); None when undefined (a zero baseline)."""
        try:
            return delta_m(metrics, self.metrics, self.directions)
        except DeltaMError:
            return None


def load_baselines(cfg: DictConfig, directions: Mapping[str, Mapping[str, bool]]) -> Baselines | None:
    """The baselines of ``cfg.sweep.baselines`` matched as in the report; None when not given or not usable.

    Trackers log Δm only when every task has a completed single-task run; otherwise a warning
    says why not (training goes on: ``sweep.objective=delta_m`` is what insists on baselines).
    """
    if not cfg.sweep.baselines:
        return None
    try:
        candidates = load_runs(list(cfg.sweep.baselines), option="sweep.baselines")
    except UserError as exc:
        log.warning("Δm is not logged: %s", one_line(str(exc)))
        return None
    tasks = list(cfg.tasks.keys())
    matches = match_baselines(tasks, flatten_dict(config_record(cfg)), candidates)
    missing = [t for t in tasks if t not in matches]
    if missing:
        log.warning("Δm is not logged: sweep.baselines has no completed single-task run of %s", ", ".join(missing))
        return None
    return Baselines(
        baseline_metrics(matches), {**baseline_directions(matches), **{t: dict(d) for t, d in directions.items()}}
    )
