"""Comparing runs: delta-m against single-task baselines, Pareto fronts, the sweep report.

Reads run directories (``summary.json``, ``.hydra/``) only; it never imports the training engine.
"""

from mtl_cli.reporting.deltam import (
    BaselineMatch,
    DeltaMError,
    baseline_directions,
    baseline_metrics,
    delta_m,
    match_baselines,
)
from mtl_cli.reporting.pareto import pareto_front
from mtl_cli.reporting.report import Report, build_report, write_report
from mtl_cli.reporting.runs import RunRecord, load_runs

__all__ = [
    "BaselineMatch",
    "DeltaMError",
    "Report",
    "RunRecord",
    "baseline_directions",
    "baseline_metrics",
    "build_report",
    "delta_m",
    "load_runs",
    "match_baselines",
    "pareto_front",
    "write_report",
]
