"""The sweep report: one row per run, delta-m against single-task baselines, best runs, problems."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mtl_cli.commands import resume_command
from mtl_cli.errors import UserError
from mtl_cli.reporting.deltam import (
    BaselineMatch,
    DeltaMError,
    baseline_directions,
    baseline_metrics,
    delta_m,
    match_baselines,
)
from mtl_cli.reporting.pareto import plot_pareto
from mtl_cli.reporting.runs import RunRecord, load_runs, name_runs
from mtl_cli.reporting.seeds import SEED_KEY, SeedGroup, group_by_seed, mean_std

DELTA_M = "delta_m"
MISSING = "—"


@dataclass
class Row:
    """One run of the table."""

    run: RunRecord
    delta_m: float | None = None
    baselines: dict[str, BaselineMatch] = field(default_factory=dict)
    note: str = ""


@dataclass
class Report:
    """Everything the report shows; ``markdown()`` and ``write_csv()`` render it."""

    rows: list[Row]
    swept: list[str]
    metrics: list[str]
    directions: dict[str, bool]
    which: str = "final"
    pareto_axes: tuple[str, str] | None = None
    pareto_front: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ queries
    def value(self, row: Row, key: str) -> float:
        if key == DELTA_M:
            return math.nan if row.delta_m is None else row.delta_m
        return row.run.value(key, self.which)

    def best(self) -> list[tuple[str, Row, float]]:
        """The best completed run for every metric and for delta-m (NaN values never win)."""
        result = []
        for key in [*self.metrics, DELTA_M]:
            higher = self.directions.get(key, True)
            scored = [(self.value(r, key), r) for r in self.rows if r.run.completed]
            scored = [(v, r) for v, r in scored if math.isfinite(v)]
            if scored:
                value, row = (max if higher else min)(scored, key=lambda vr: vr[0])
                result.append((key, row, value))
        return result

    def problems(self) -> list[Row]:
        """Runs that did not complete: failed, interrupted, unfinished or never started."""
        return [r for r in self.rows if not r.run.completed]

    # ------------------------------------------------------------------ rendering
    def _header(self, key: str) -> str:
        arrow = "↑" if self.directions.get(key, True) else "↓"
        return f"{'Δm %' if key == DELTA_M else key} {arrow}"

    def _cell(self, row: Row, key: str) -> str:
        value = self.value(row, key)
        if not math.isfinite(value):
            return MISSING
        if key == DELTA_M:
            return f"{value:+.2f}"
        trivial = row.run.trivial(key)
        return f"{value:.4f} ({trivial:.4f})" if math.isfinite(trivial) else f"{value:.4f}"

    def seed_groups(self) -> list[SeedGroup]:
        """Completed runs that differ only in ``trainer.seed``, one group per configuration."""
        others = [k for k in self.swept if k != SEED_KEY]
        return group_by_seed(
            self.rows, lambda row: ", ".join(f"{k}={row.run.overrides.get(k, MISSING)}" for k in others) or row.run.name
        )

    def seed_cell(self, group: SeedGroup, key: str) -> str:
        mean, std, count = mean_std([self.value(r, key) for r in group.rows])
        if count == 0:
            return MISSING
        digits = 2 if key == DELTA_M else 4
        text = f"{mean:+.{digits}f} ± {std:.{digits}f}" if key == DELTA_M else f"{mean:.{digits}f} ± {std:.{digits}f}"
        if key != DELTA_M:
            trivial, _, known = mean_std([r.run.trivial(key) for r in group.rows])
            text += f" ({trivial:.4f})" if known else ""
        return text + (f" [n={count}]" if count != len(group.rows) else "")

    def seed_table(self) -> list[str]:
        """Markdown lines: mean ± std over seeds of every metric and of Δm, when some configuration has several seeds."""
        groups = self.seed_groups()
        if not any(len(g.rows) > 1 for g in groups):
            return []
        keys = [*self.metrics, DELTA_M]
        header = ["configuration", "seeds", *(self._header(k) for k in keys)]
        lines = ["", "## Over seeds (mean ± std)", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for group in groups:
            cells = [group.label, ",".join(group.seeds), *(self.seed_cell(group, k) for k in keys)]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return lines

    def markdown(self) -> str:
        n = len(self.rows)
        lines = [f"# Report ({n} run{'' if n == 1 else 's'}, {self.which} validation metrics)", ""]
        header = ["run", "status", *self.swept, *(self._header(k) for k in [*self.metrics, DELTA_M]), "baselines"]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for row in self.rows:
            cells = [row.run.name, row.run.status, *(row.run.overrides.get(k, MISSING) for k in self.swept)]
            cells += [self._cell(row, k) for k in [*self.metrics, DELTA_M]]
            cells.append(", ".join(f"{t}: {m.run.name}" for t, m in row.baselines.items()) or MISSING)
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines += self.seed_table()
        best = self.best()
        if best:
            lines += ["", "## Best runs", "", "| criterion | run | value |", "|---|---|---|"]
            lines += [f"| {self._header(k)} | {r.run.name} | {self._cell(r, k)} |" for k, r, _ in best]
        if self.pareto_axes:
            lines += ["", f"## Pareto front ({self.pareto_axes[0]} vs {self.pareto_axes[1]})", ""]
            if self.pareto_front:
                lines += ["Runs on the front: " + ", ".join(self.pareto_front), "", "![Pareto front](pareto.png)"]
            else:
                lines.append("No completed run has both metrics, so there is no picture.")
        problems = self.problems()
        if problems:
            lines += ["", "## Failed or unfinished runs", ""]
            lines += [f"- `{r.run.name}` ({r.run.path}): {problem_text(r, self.rows)}" for r in problems]
        notes = [f"- `{r.run.name}`: {r.note}" for r in self.rows if r.note]
        if notes:
            lines += ["", "## Notes", "", *notes]
        lines += ["", DELTA_M_RULE]
        return "\n".join(lines) + "\n"

    def write_csv(self, path: Path) -> None:
        columns = ["run", "path", "status", *self.swept, *self.metrics, DELTA_M, "baselines", "note"]
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in self.rows:
                values = [self.value(row, k) for k in [*self.metrics, DELTA_M]]
                writer.writerow(
                    [
                        row.run.name,
                        str(row.run.path),
                        row.run.status,
                        *(row.run.overrides.get(k, "") for k in self.swept),
                        *("" if not math.isfinite(v) else repr(v) for v in values),
                        ";".join(f"{t}:{m.run.path}" for t, m in row.baselines.items()),
                        row.note if row.run.completed else problem_text(row, self.rows),
                    ]
                )


DELTA_M_RULE = (
    "Δm % = mean over every task metric of ±(M_run − M_baseline) / M_baseline × 100 (+ when higher is "
    "better, − when lower is better); the baseline of a task is the completed single-task run of that "
    "task whose config differs least from the run's (task selection, loss weights, monitor, resume and "
    "sweep settings ignored), so each seed is compared with the same seed's baselines. A metric in "
    "brackets is the task's trivial baseline on the same labels (majority class, background only, mean "
    "depth, mean normal, all edges, label frequencies)."
)


def problem_text(row: Row, rows: Sequence[Row]) -> str:
    """What is wrong with a run that did not complete, and how to continue it."""
    run = row.run
    status = {
        "running": "unfinished (still running, or killed on another host)",
        "died": "died",
        "interrupted": "interrupted",
        "failed": "failed",
        "no summary": "failed before training started",
    }.get(run.status, run.status)
    parts = [status]
    if run.error:
        parts.append(run.error)
    successors = [r.run.name for r in rows if _resumes(r.run, run)]
    if successors:
        parts.append("continued by " + ", ".join(successors))
    elif run.status in ("running", "died", "interrupted") and (run.path / "checkpoints" / "last.pt").is_file():
        command = run.summary.get("resume_command") or resume_command(list(_override_list(run)), run.path)
        parts.append(f"resume: {command}")
    return "; ".join(parts)


def _override_list(run: RunRecord) -> Iterable[str]:
    overrides = run.summary.get("overrides")
    return overrides if overrides is not None else [f"{k}={v}" for k, v in run.overrides.items()]


def _resumes(later: RunRecord, earlier: RunRecord) -> bool:
    source = (later.summary.get("resumed_from") or {}).get("checkpoint")
    return bool(source) and Path(source).resolve().is_relative_to(earlier.path)


def swept_keys(runs: Sequence[RunRecord]) -> list[str]:
    """Override keys whose value is not the same in every run (in first-seen order).

    ``sweep.*`` (how runs are compared, not how they are trained) is left out.
    """
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.overrides if k not in keys and not k.startswith("sweep.")]
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


def metric_keys(runs: Sequence[RunRecord], which: str) -> tuple[list[str], dict[str, bool]]:
    """Every ``task.metric`` any run recorded (first-seen order) and its direction."""
    keys: list[str] = []
    directions: dict[str, bool] = {DELTA_M: True}
    for run in runs:
        for task, values in run.metrics(which).items():
            keys += [f"{task}.{m}" for m in values if f"{task}.{m}" not in keys]
        for task, values in run.directions.items():
            directions.update({f"{task}.{m}": bool(h) for m, h in values.items()})
    return keys, directions


def compute_delta_m(run: RunRecord, candidates: Sequence[RunRecord], which: str) -> Row:
    """The row of one run: its delta-m against the baselines matched from ``candidates``."""
    row = Row(run)
    if not run.completed or len(run.tasks) < 2:  # a single-task run is its own closest baseline
        return row
    row.baselines = match_baselines(run.tasks, run.config, candidates)
    missing = [t for t in run.tasks if t not in row.baselines]
    if missing:
        row.note = f"no Δm: no completed single-task run of {', '.join(missing)} (add them or pass --baselines)"
        return row
    directions = {**baseline_directions(row.baselines), **run.directions}
    try:
        row.delta_m = delta_m(run.metrics(which), baseline_metrics(row.baselines, which), directions)
    except DeltaMError as exc:
        row.note = f"no Δm: {exc}"
        return row
    differing = [
        f"{t} baseline {m.run.name} differs in {', '.join(m.differences)}"
        for t, m in row.baselines.items()
        if m.differences
    ]
    row.note = "; ".join(differing)
    return row


def default_pareto_axes(runs: Sequence[RunRecord]) -> tuple[str, str] | None:
    """The main metrics of the first two tasks of the first completed multi-task run."""
    for run in runs:
        primary = run.summary.get("primary_metrics", {})
        if run.completed and len(run.tasks) >= 2 and all(t in primary for t in run.tasks[:2]):
            first, second = run.tasks[:2]
            return f"{first}.{primary[first]}", f"{second}.{primary[second]}"
    return None


def build_report(paths: Sequence[str | Path], baselines: Sequence[str | Path] = (), which: str = "final") -> Report:
    """Read the runs under ``paths`` (and single-task baselines under ``baselines``) into a report."""
    if which not in ("final", "best"):
        raise UserError(f"metrics '{which}': use final (last epoch) or best (best epoch)")
    runs = load_runs(paths)
    extra = load_runs(baselines, option="--baselines") if baselines else []
    known = {r.path for r in runs}
    candidates = runs + [r for r in extra if r.path not in known]
    name_runs(candidates)  # baselines from elsewhere get names that tell them apart ...
    name_runs(runs)  # ... while the report's own runs keep the short ones
    rows = [compute_delta_m(run, candidates, which) for run in runs]
    metrics, directions = metric_keys(runs, which)
    return Report(rows, swept_keys(runs), metrics, directions, which)


def write_report(report: Report, out_dir: Path, pareto: tuple[str, str] | None = None) -> list[Path]:
    """Write ``report.md``, ``report.csv`` and (with two metrics) ``pareto.png`` into ``out_dir``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file; give a directory for report.md, report.csv and pareto.png")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"--out {out_dir}: cannot create the directory ({exc.strerror or exc}); choose another"
        ) from None
    axes = pareto or default_pareto_axes([r.run for r in report.rows])
    written = []
    if axes is not None:
        unknown = [a for a in axes if a not in report.metrics and a != DELTA_M]
        if unknown:
            raise UserError(
                f"--pareto {' '.join(axes)}: no run has {', '.join(unknown)}; choose from {', '.join(report.metrics)}"
            )
        report.pareto_axes = axes
        rows = [r for r in report.rows if r.run.completed]
        points = [(report.value(r, axes[0]), report.value(r, axes[1])) for r in rows]
        keep = [i for i, (x, y) in enumerate(points) if math.isfinite(x) and math.isfinite(y)]
        if keep:
            higher = (report.directions.get(axes[0], True), report.directions.get(axes[1], True))
            front = plot_pareto(
                out_dir / "pareto.png",
                [points[i] for i in keep],
                [rows[i].run.name for i in keep],
                axes,
                higher,
            )
            report.pareto_front = [rows[keep[i]].run.name for i in front]
            written.append(out_dir / "pareto.png")
    (out_dir / "report.md").write_text(report.markdown())
    report.write_csv(out_dir / "report.csv")
    return [out_dir / "report.md", out_dir / "report.csv", *written]
