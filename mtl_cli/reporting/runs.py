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

Metrics = Mapping[str, Mapping[str, float]]


@dataclass
class RunRecord:
    """One run directory as the report sees it.

    ``status`` is the summary's (``completed``, ``failed``, ``interrupted``, ``running``) or
    ``no summary`` for a Hydra job directory whose run never started training.
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
    summary: dict[str, Any] = {}
    summary_file = path / "summary.json"
    if summary_file.is_file():
        try:
            summary = json.loads(summary_file.read_text())
        except (OSError, json.JSONDecodeError):
            summary = {"status": "unreadable", "error": f"{summary_file} is not valid JSON"}
    status = str(summary.get("status", "no summary"))
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


def _is_run_dir(path: Path) -> bool:
    return (path / "summary.json").is_file() or (path / ".hydra" / "config.yaml").is_file()


def find_run_dirs(root: Path) -> list[Path]:
    """``root`` itself when it is a run directory, else every run directory below it."""
    if _is_run_dir(root):
        return [root]
    found = {p.parent for p in root.rglob("summary.json")}
    found |= {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
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
