"""End-to-end learning: seg, depth and edges beat their trivial predictors by a clear margin.

The trivial baselines are computed here from the validation labels (``Task.trivial_metrics``),
not read from the run, and not hard-coded.
"""

from __future__ import annotations

import pytest
from conftest import read_summary
from hydra import compose, initialize_config_dir

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.data import build_datasets
from mtl_cli.engine.build import build_tasks

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SMALL = [
    "task=seg+depth+normals+edges",
    "data.num_train=384",
    "data.num_val=96",
    "data.image_size=48",
    "backbone.width=16",
    "trainer.batch_size=32",
    "trainer.epochs=3",
    "trainer.vis_images=0",
]
# primary metric -> how much better than the trivial predictor it must be (absolute, in its direction).
# Seed 0 of these settings measured: seg mIoU +0.042, depth abs err -0.42, edges ODS F +0.24 over trivial.
# Normals are trained here too but do not beat the constant mean normal at this size (docs/results.md).
MARGINS = {"seg": ("miou", 0.02), "depth": ("abs_err", 0.2), "edges": ("ods_f", 0.1)}


def trivial_from_val_labels(overrides: list[str]) -> dict[str, dict[str, float]]:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = validate(compose("train", overrides=overrides))
    tasks = build_tasks(cfg)
    _, val_set = build_datasets(
        cfg.data, [t.name for t in tasks], {t.name: {**t.settings, "kind": t.kind} for t in tasks}
    )
    items = [val_set[i] for i in range(len(val_set))]
    return {t.name: t.trivial_metrics([item[t.name].unsqueeze(0) for item in items]) for t in tasks}


def test_dense_tasks_beat_their_trivial_predictors(train):
    metrics = read_summary(train(*SMALL, tiny=False))["metrics"]
    trivial = trivial_from_val_labels(SMALL)
    for task, (name, margin) in MARGINS.items():
        value, base = metrics[task][name], trivial[task][name]
        lower_is_better = name in ("abs_err", "mean_angle")
        better = base - value if lower_is_better else value - base
        assert better > margin, f"{task}.{name} = {value:.4f}, trivial {base:.4f}: not better by {margin}"
