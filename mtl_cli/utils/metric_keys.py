"""``<task>.<metric>`` names, as in ``trainer.monitor=seg.miou`` and ``sweep.objective=cls.accuracy``."""

from __future__ import annotations


def split_metric_key(key: str) -> tuple[str, str]:
    """``"seg.miou"`` -> ``("seg", "miou")``; the metric is ``""`` when ``key`` has no dot."""
    task, _, metric = key.partition(".")
    return task, metric
