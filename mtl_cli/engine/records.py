"""Run records: metrics.csv (one row per epoch), summary.json and the console summary."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig, OmegaConf

Metrics = Mapping[str, Mapping[str, float]]


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")
    os.replace(tmp, path)


def flatten_metrics(metrics: Metrics, prefix: str = "val/") -> dict[str, float]:
    """``{"cls": {"accuracy": 0.9}}`` -> ``{"val/cls.accuracy": 0.9}``."""
    return {f"{prefix}{task}.{name}": value for task, values in metrics.items() for name, value in values.items()}


class MetricsLog:
    """Appends one row per epoch to ``metrics.csv``; the header is fixed by the first row."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.is_file():
            with self.path.open(newline="") as handle:
                self.columns = next(csv.reader(handle), None)

    def append(self, row: Mapping[str, Any]) -> None:
        if self.columns is None:
            self.columns = list(row.keys())
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: _fmt(v) for k, v in row.items()}
            )

    def truncate_after(self, epoch: int) -> None:
        """Drop rows for epochs after ``epoch`` (used when resuming from an earlier checkpoint)."""
        if not self.path.is_file():
            return
        with self.path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        kept = [r for r in rows if int(r["epoch"]) <= epoch]
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns or list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(kept)


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def format_epoch_summary(
    epoch: int, epochs: int, train_losses: Mapping[str, float], metrics: Metrics, seconds: float
) -> str:
    """A short block: the epoch's train losses, then one line of val metrics per task."""
    total = sum(train_losses.values())
    losses = ", ".join(f"{t} {v:.4f}" for t, v in train_losses.items())
    lines = [f"epoch {epoch}/{epochs}  train loss {total:.4f} ({losses})  {seconds:.1f}s"]
    if metrics:
        lines.append(format_metrics(metrics))
    return "\n".join(lines)


def format_metrics(metrics: Metrics) -> str:
    """One indented line of metrics per task, task names aligned."""
    width = max((len(t) for t in metrics), default=0)
    lines = []
    for task, values in metrics.items():
        shown = "  ".join(f"{name} {value:.4f}" for name, value in values.items())
        lines.append(f"  {task:<{width}}  {shown}")
    return "\n".join(lines)


def config_record(cfg: DictConfig) -> dict[str, Any]:
    """A config as plain JSON-ready values (interpolations resolved, enums as their names)."""
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert isinstance(plain, dict)
    return plain  # type: ignore[return-value]


def key_under(key: str, prefixes: Iterable[str]) -> bool:
    """Whether the dotted ``key`` is one of ``prefixes`` or lies below one."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def flatten_dict(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> ``{"a.b": value}`` (empty mappings and lists are values)."""
    if isinstance(node, Mapping) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten_dict(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node} if prefix else {}
