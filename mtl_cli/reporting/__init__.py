"""Comparing runs: delta-m against single-task baselines, Pareto fronts, the sweep report."""

from mtl_cli.reporting.deltam import DeltaMError, delta_m, match_baselines
from mtl_cli.reporting.pareto import pareto_front
from mtl_cli.reporting.report import Report, build_report, write_report
from mtl_cli.reporting.runs import RunRecord, load_runs

__all__ = [
    "DeltaMError",
    "Report",
    "RunRecord",
    "build_report",
    "delta_m",
    "load_runs",
    "match_baselines",
    "pareto_front",
    "write_report",
]
