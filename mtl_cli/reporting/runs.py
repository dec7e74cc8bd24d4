"""Finding run directories and reading what they recorded (no task classes needed)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mtl_cli.errors import UserError
from mtl_cli.utils.mappings import flatten_dict
from mtl_cli.utils.metric_keys import split_metric_key
from mtl_cli.utils.process import process_alive

Metrics = Mapping[str, Mapping[str, float]]


@dataclass
class RunRecord:
    """One run directory as the report sees it.

    ``status`` is the summary's (``completed``, ``failed``, ``interrupted``, ``running``),
    ``died`` for a ``running`` run whose process is gone, ``unreadable`` for a summary that
    is not one, or ``no summary`` for a Hydra job directory whose run never started training.
    """

    path: Path
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    @property
    def tasks(self) -> list[str]:
        return list(self.summary.get("tasks", []))

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def directions(self) -> dict[str, dict[str, bool]]:
        return self.summary.get("metric_directions", {})

    @property
    def error(self) -> str | None:
        return self.summary.get("error")

    def metrics(self, which: str = "final") -> dict[str, dict[str, float]]:
        """Validation metrics: of the last epoch (``final``) or of the best epoch (``best``)."""
        return self.summary.get("best_metrics" if which == "best" else "metrics", {}) or {}

    def trivial(self, key: str) -> float:
        """The trivial baseline of ``key`` (``summary.json`` ``trivial_metrics``); NaN when not recorded."""
        task, metric = split_metric_key(key)
        value = (self.summary.get("trivial_metrics") or {}).get(task, {}).get(metric)
        return float(value) if value is not None else math.nan

    def value(self, key: str, which: str = "final") -> float:
        """``value("cls.accuracy")``; NaN when the run has no such metric."""
        task, metric = split_metric_key(key)
        value = self.metrics(which).get(task, {}).get(metric)
        return float(value) if value is not None else math.nan


def parse_overrides(overrides: Iterable[str]) -> dict[str, str]:
    """``["task=cls", "+a.b=1"]`` -> ``{"task": "cls", "a.b": "1"}``."""
    parsed = {}
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if sep:
            parsed[key.lstrip("+~")] = value
    return parsed


def _read_yaml(path: Path) -> Any:
    try:
        node = OmegaConf.load(path)
        try:
            return OmegaConf.to_container(node, resolve=True)
        except OmegaConfBaseException:  # e.g. interpolations into Hydra's own config
            return OmegaConf.to_container(node, resolve=False)
    except (OSError, OmegaConfBaseException):
        return None


def read_run(path: Path) -> RunRecord:
    """Read one run directory (``summary.json`` and/or Hydra's ``.hydra`` records)."""
    summary = read_summary(path / "summary.json")
    status = str(summary.get("status", "no summary"))
    if status == "running" and process_alive(summary.get("process") or {}) is False:
        status = "died"
        process = summary["process"]
        summary["error"] = (
            f"its process (pid {process['pid']} on {process['host']}) is gone: it was killed "
            f"(out of memory, SIGKILL) without finishing"
        )
    overrides = summary.get("overrides")
    if overrides is None:
        overrides = _read_yaml(path / ".hydra" / "overrides.yaml") or []
    config = summary.get("config")
    if config is None:
        config = _read_yaml(path / ".hydra" / "config.yaml") or {}
    if not summary and status == "no summary":
        summary = {"error": "no summary.json: the run stopped before training started (see its log)"}
    if "tasks" not in summary and isinstance(config, dict) and isinstance(config.get("tasks"), dict):
        summary["tasks"] = list(config["tasks"])
    return RunRecord(path, status, summary, parse_overrides(overrides), flatten_dict(config))


def read_summary(path: Path) -> dict[str, Any]:
    """A run's ``summary.json`` as a dict; ``{}`` when there is none, and status ``unreadable`` when it is
    not a JSON object of the expected shape (binary, a list, metrics that are not per-task tables)."""
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {"status": "unreadable", "error": f"{path} is not valid JSON"}
    problem = _shape_problem(summary)
    if problem:
        return {"status": "unreadable", "error": f"{path} {problem}"}
    return summary


def _shape_problem(summary: Any) -> str | None:
    """What makes ``summary`` unusable as a run summary, or ``None``."""
    if not isinstance(summary, dict):
        return f"holds a JSON {type(summary).__name__}, not an object"
    for key in ("metrics", "best_metrics", "metric_directions"):
        table = summary.get(key)
        if table is not None and not (isinstance(table, dict) and all(isinstance(v, dict) for v in table.values())):
            return f"has '{key}' that is not a table of per-task values"
    for key, kind in (("tasks", list), ("overrides", list), ("config", dict), ("process", dict)):
        if summary.get(key) is not None and not isinstance(summary[key], kind):
            return f"has '{key}' that is not a JSON {'list' if kind is list else 'object'}"
    return None


def _is_run_dir(path: Path) -> bool:
    return (path / "summary.json").is_file() or (path / ".hydra" / "config.yaml").is_file()


def find_run_dirs(root: Path) -> list[Path]:
    """``root`` itself when it is a run directory, else every run directory below it (not nested in another)."""
    if _is_run_dir(root):
        return [root]
    found = {p.parent for p in root.rglob("summary.json")}
    found |= {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    # a copy of summary.json inside a run (a tracker's files, e.g. wandb/) is not another run
    found = {p for p in found if not any(parent in found for parent in p.parents)}
    return sorted(found, key=_natural_key)


def _natural_key(path: Path) -> list[Any]:
    """Sort ``10`` after ``9`` in sweep job numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in path.parts]


def load_runs(paths: Iterable[str | Path], *, option: str = "runs") -> list[RunRecord]:
    """Every run under ``paths``, each once, named by its path relative to their common folder."""
    dirs: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise UserError(f"{option}: {raw} does not exist; give run directories or multirun directories")
        for run_dir in find_run_dirs(path.resolve()):
            if run_dir not in dirs:
                dirs.append(run_dir)
    if not dirs:
        shown = ", ".join(str(p) for p in paths)
        raise UserError(f"{option}: no runs (summary.json or .hydra/config.yaml) found under {shown}")
    runs = [read_run(d) for d in dirs]
    name_runs(runs)
    return runs


def name_runs(runs: list[RunRecord]) -> None:
    """Short names: the path relative to the runs' common folder (the folder name for one run)."""
    if len(runs) == 1:
        runs[0].name = runs[0].path.name
        return
    common = Path(*_common_parts([r.path.parts for r in runs]))
    for run in runs:
        run.name = str(run.path.relative_to(common)) if run.path != common else run.path.name


def _common_parts(parts: list[tuple[str, ...]]) -> tuple[str, ...]:
    prefix: list[str] = []
    for column in zip(*parts):
        if len(set(column)) != 1:
            break
        prefix.append(column[0])
    return tuple(prefix)
