"""``mtl-train task=det`` / ``task=det+seg`` through the CLI: records, picture and mtl-report with delta-m."""

from __future__ import annotations

import csv

import pytest
from conftest import read_summary, run_cli

pytestmark = pytest.mark.e2e


def test_det_and_det_seg_train_record_and_report(tmp_path, train):
    det = train("task=det", "hydra.run.dir=runs/det")
    joint = train("task=seg+det", "hydra.run.dir=runs/det_seg", "arch=mtan")
    for run, tasks in ((det, ["det"]), (joint, ["seg", "det"])):
        summary = read_summary(run)
        assert summary["status"] == "completed" and list(summary["metrics"]) == tasks
        assert set(summary["metrics"]["det"]) == {"map", "map_50", "map_75"}
        assert 0.0 <= summary["metrics"]["det"]["map_50"] <= 1.0
        assert summary["metric_directions"]["det"] == {"map": True, "map_50": True, "map_75": True}
        with (run / "metrics.csv").open() as handle:
            header = next(csv.reader(handle))
        assert {"train/det_loss", "val/det.map", "val/det.map_50"} <= set(header)
        assert (run / "val_predictions.png").stat().st_size > 0
    seg = train("task=seg", "hydra.run.dir=runs/seg")
    run_cli("mtl_cli.report", [str(joint), "--baselines", str(det), str(seg)], cwd=tmp_path)
    with (joint / "report.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert 0.0 <= float(row["det.map_50"]) <= 1.0
    delta = [key for key in row if "delta" in key.lower() or "Δm" in key]
    assert delta and row[delta[0]] not in ("", "nan"), row  # det's mAP enters delta-m (higher is better)
