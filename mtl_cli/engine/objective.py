"""The value a training run returns to a Hydra sweeper (what Optuna optimises): ``sweep.objective``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from mtl_cli.engine.records import config_record
from mtl_cli.errors import UserError
from mtl_cli.reporting import (
    BaselineMatch,
    DeltaMError,
    baseline_directions,
    baseline_metrics,
    delta_m,
    load_runs,
    match_baselines,
)
from mtl_cli.utils.mappings import flatten_dict
from mtl_cli.utils.metric_keys import split_metric_key


class Objective:
    """``monitor`` (best value of ``trainer.monitor``), ``<task>.<metric>`` (final value) or ``delta_m``.

    Everything that can be checked before training is checked in the constructor: the
    metric exists, and for ``delta_m`` every task has a completed single-task baseline run
    in ``sweep.baselines`` (matched as in the report).
    """

    def __init__(self, cfg: DictConfig, directions: Mapping[str, Mapping[str, bool]]) -> None:
        self.name = cfg.sweep.objective
        self.directions = {t: dict(m) for t, m in directions.items()}
        self.matches: dict[str, BaselineMatch] = {}
        if self.name == "delta_m":
            self.matches = self._baselines(cfg)
            base = baseline_metrics(self.matches)
            try:  # a zero or missing baseline value would only show after training
                delta_m(base, base, {**baseline_directions(self.matches), **self.directions})
            except DeltaMError as exc:
                raise UserError(f"sweep.objective=delta_m cannot use these baselines: {exc}") from exc
        elif self.name != "monitor":
            task, metric = split_metric_key(self.name)
            if metric not in self.directions.get(task, {}):
                raise UserError(
                    f"sweep.objective={self.name}: task '{task}' has no metric '{metric}'; "
                    f"its metrics: {', '.join(self.directions.get(task, {}))}"
                )

    @staticmethod
    def _baselines(cfg: DictConfig) -> dict[str, BaselineMatch]:
        if not cfg.sweep.baselines:
            raise UserError(
                "sweep.objective=delta_m needs single-task runs to compare with: run them "
                "(mtl-train -m task=cls,seg ...) and set sweep.baselines=[<their multirun dir>]"
            )
        candidates = load_runs(list(cfg.sweep.baselines), option="sweep.baselines")
        config = flatten_dict(config_record(cfg))
        tasks = list(cfg.tasks.keys())
        matches = match_baselines(tasks, config, candidates)
        missing = [t for t in tasks if t not in matches]
        if missing:
            raise UserError(
                f"sweep.baselines has no completed single-task run of {', '.join(missing)}; "
                f"add one (mtl-train task={missing[0]} ...) for sweep.objective=delta_m"
            )
        return matches

    def value(self, summary: Mapping[str, Any]) -> float | None:
        """The objective of a finished run from its summary."""
        if self.name == "monitor":
            task, metric = split_metric_key(str(summary.get("monitor", "")))
            return summary.get("best_metrics", {}).get(task, {}).get(metric)
        if self.name == "delta_m":
            directions = {**baseline_directions(self.matches), **self.directions}
            return delta_m(summary["metrics"], baseline_metrics(self.matches), directions)
        task, metric = split_metric_key(self.name)
        return summary["metrics"][task][metric]
