"""mtl-report over seeds: one row per configuration with mean ± std, per-seed delta-m, trivial baselines."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from mtl_cli.reporting import build_report

DIRECTIONS = {"cls": {"accuracy": True}, "seg": {"miou": True}}


def write_run(folder: Path, tasks: list[str], seed: int, metrics: dict, trivial: dict | None = None) -> None:
    folder.mkdir(parents=True)
    overrides = [f"task={'+'.join(tasks)}", f"trainer.seed={seed}"]
    summary = {
        "status": "completed",
        "tasks": tasks,
        "overrides": overrides,
        "config": {"tasks": {t: {"kind": t} for t in tasks}, "trainer": {"seed": seed}, "optim": {"lr": 0.01}},
        "metric_directions": {t: DIRECTIONS[t] for t in tasks},
        "metrics": metrics,
        "best_metrics": metrics,
        "trivial_metrics": trivial or {},
    }
    (folder / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    root = tmp_path / "multirun"
    for seed in range(3):
        write_run(
            root / f"cls{seed}", ["cls"], seed, {"cls": {"accuracy": 0.5 + 0.1 * seed}}, {"cls": {"accuracy": 0.25}}
        )
        write_run(root / f"seg{seed}", ["seg"], seed, {"seg": {"miou": 0.4}})
        write_run(
            root / f"both{seed}", ["cls", "seg"], seed, {"cls": {"accuracy": 0.6 + 0.1 * seed}, "seg": {"miou": 0.4}}
        )
    return root


def test_runs_differing_only_in_seed_form_one_row_with_mean_and_std(seeds):
    report = build_report([seeds])
    groups = report.seed_groups()
    assert [len(g.rows) for g in groups] == [3, 3, 3]
    assert sorted(groups[0].seeds) == ["0", "1", "2"]
    md = report.markdown()
    assert "## Over seeds (mean ± std)" in md
    cls_row = next(line for line in md.split("## Over seeds")[1].splitlines() if line.startswith("| task=cls |"))
    std = statistics.stdev([0.5, 0.6, 0.7])
    assert f"0.6000 ± {std:.4f} (0.2500)" in cls_row


def test_delta_m_is_per_seed_against_the_same_seeds_baselines(seeds):
    report = build_report([seeds])
    both = [r for r in report.rows if r.run.tasks == ["cls", "seg"]]
    for row in both:
        seed = row.run.config["trainer.seed"]
        assert row.baselines["cls"].run.config["trainer.seed"] == seed
        expected = ((0.6 + 0.1 * seed) - (0.5 + 0.1 * seed)) / (0.5 + 0.1 * seed) * 100 / 2
        assert row.delta_m == pytest.approx(expected)
    group = next(g for g in report.seed_groups() if g.rows[0].run.tasks == ["cls", "seg"])
    mean = statistics.fmean(r.delta_m for r in group.rows)
    line = next(line for line in report.seed_table() if line.startswith("| task=cls+seg |"))
    assert line.endswith(f"| {mean:+.2f} ± {statistics.stdev(r.delta_m for r in group.rows):.2f} |")


def test_the_trivial_baseline_is_shown_next_to_the_metric(seeds):
    md = build_report([seeds / "cls0"]).markdown()
    assert "0.5000 (0.2500)" in md
    assert "Over seeds" not in md
