"""Run records: metric names for metrics.csv, the config as JSON values and the console summary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

Metrics = Mapping[str, Mapping[str, float]]


def flatten_metrics(metrics: Metrics, prefix: str = "val/") -> dict[str, float]:
    """``{"cls": {"accuracy": 0.9}}`` -> ``{"val/cls.accuracy": 0.9}``."""
    return {f"{prefix}{task}.{name}": value for task, values in metrics.items() for name, value in values.items()}


def format_epoch_summary(
    epoch: int,
    epochs: int,
    train_losses: Mapping[str, float],
    metrics: Metrics,
    seconds: float,
    input_size: tuple[int, int] | None = None,
) -> str:
    """A short block: the epoch's train losses (and its input size if resized), then one line of val metrics per task."""
    total = sum(train_losses.values())
    losses = ", ".join(f"{t} {v:.4f}" for t, v in train_losses.items())
    resized = f"  inputs {input_size[0]}x{input_size[1]}" if input_size else ""
    lines = [f"epoch {epoch}/{epochs}  train loss {total:.4f} ({losses}){resized}  {seconds:.1f}s"]
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
