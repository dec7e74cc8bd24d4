"""``mtl-train task=det`` / ``task=det+seg`` through the CLI: records, picture and mtl-report with delta-m."""

from __future__ import annotations

import csv
import json

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
    # A tiny det run may score mAP@.75 = 0, for which a relative change is undefined: give the
    # det baseline known non-zero metrics, so that delta-m can be checked by hand.
    det_summary = read_summary(det)
    det_summary["metrics"]["det"] = {"map": 0.2, "map_50": 0.4, "map_75": 0.1}
    (det / "summary.json").write_text(json.dumps(det_summary))
    run_cli("mtl_cli.report", [str(joint), "--baselines", str(det), str(seg)], cwd=tmp_path)
    with (joint / "report.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert 0.0 <= float(row["det.map_50"]) <= 1.0
    ours, base = read_summary(joint)["metrics"], {**read_summary(seg)["metrics"], **det_summary["metrics"]}
    terms = [(ours[t][m] - base[t][m]) / base[t][m] * 100.0 for t in ours for m in ours[t]]  # all higher-is-better
    assert float(row["delta_m"]) == pytest.approx(sum(terms) / len(terms), rel=1e-4)  # det's mAP enters delta-m
