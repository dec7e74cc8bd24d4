"""End-to-end learning: every task kind beats its trivial predictor by a clear margin.

One run trains cls, seg, depth, normals, edges and multilabel together (smaller images,
a narrower backbone and fewer images than the defaults, the default optimiser). The
trivial baselines are computed here from the validation labels (``Task.trivial_metrics``),
not read from the run, and not hard-coded.
"""

from __future__ import annotations

import pytest
from conftest import read_summary
from hydra import compose, initialize_config_dir

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.data import build_datasets
from mtl_cli.engine.build import build_tasks
from mtl_cli.engine.evaluate import metric_directions

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SMALL = [
    "task=cls+seg+depth+normals+edges+multilabel",
    "data.num_train=2000",
    "trainer.batch_size=16",  # half the default data in half the default batch: the default 625 optimiser steps
    "data.num_val=200",
    "data.image_size=48",
    "backbone.width=16",
    "trainer.epochs=5",
    "trainer.vis_images=0",
]
# primary metric -> how much better than the trivial predictor it must be (absolute, in its direction).
# Measured (seed 0, one thread, the default weighting=uw, lr and progressive resizing): cls +0.255, seg mIoU +0.321,
# depth abs err -0.97, normals mean angle -5.5 deg, edges ODS F +0.601, multilabel mAP +0.253.
MARGINS = {
    "cls": ("accuracy", 0.1),
    "seg": ("miou", 0.1),
    "depth": ("abs_err", 0.5),
    "normals": ("mean_angle", 2.0),
    "edges": ("ods_f", 0.3),
    "multilabel": ("map", 0.1),
}


def trivial_from_val_labels(overrides: list[str]) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, bool]]]:
    """Each task's trivial metrics on the val split, and whether higher is better for each metric."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = validate(compose("train", overrides=overrides))
    tasks = build_tasks(cfg)
    _, val_set = build_datasets(
        cfg.data, [t.name for t in tasks], {t.name: {**t.settings, "kind": t.kind} for t in tasks}
    )
    items = [val_set[i] for i in range(len(val_set))]
    trivial = {t.name: t.trivial_metrics([item[t.name].unsqueeze(0) for item in items]) for t in tasks}
    return trivial, metric_directions(tasks)


def test_every_task_beats_its_trivial_predictor(train):
    metrics = read_summary(train(*SMALL, tiny=False))["metrics"]
    trivial, higher_is_better = trivial_from_val_labels(SMALL)
    failures = []
    for task, (name, margin) in MARGINS.items():
        value, base = metrics[task][name], trivial[task][name]
        better = value - base if higher_is_better[task][name] else base - value
        if better <= margin:
            failures.append(f"{task}.{name} = {value:.4f}, trivial {base:.4f}: not better by {margin}")
    assert not failures, "; ".join(failures)
