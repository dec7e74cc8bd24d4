"""curves.png from metrics.csv rows: which panels, drawn atomically, redrawn as rows grow."""

from __future__ import annotations

import csv

from PIL import Image

from mtl_cli.loggers.curves import curve_panels, draw_curves

ROWS = [
    {
        "epoch": e,
        "step": 10 * e,
        "lr": 0.1,
        "time_s": 1.0,
        "train/loss": 3.0 / e,
        "train/cls_loss": 1.0 / e,
        "train/seg_loss": 2.0 / e,
        "weight/cls": 0.4,
        "weight/seg": 0.6,
        "val/cls.accuracy": 0.5 + e / 10,
        "val/seg.miou": 0.2 * e,
        "delta_m": -e,
    }
    for e in (1, 2, 3)
]


def test_panels_are_losses_each_metric_and_weights():
    assert curve_panels(ROWS) == {
        "train loss per task": ["train/cls_loss", "train/seg_loss"],
        "val/cls.accuracy": ["val/cls.accuracy"],
        "val/seg.miou": ["val/seg.miou"],
        "delta_m": ["delta_m"],
        "task weights": ["weight/cls", "weight/seg"],
    }


def test_draws_from_the_csv_text_and_replaces_the_file(tmp_path):
    with (tmp_path / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS[:2])
    with (tmp_path / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    path = draw_curves(rows, tmp_path / "curves.png")
    first = path.read_bytes()
    assert draw_curves(ROWS, tmp_path / "curves.png") == path
    assert path.read_bytes() != first
    with Image.open(path) as image:
        assert image.size == (1260, 640)  # 3 columns x 2 rows of panels at 100 dpi
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "metrics.csv"]  # no temp file left


def test_nothing_to_draw(tmp_path):
    assert draw_curves([], tmp_path / "curves.png") is None
    assert draw_curves([{"epoch": 1, "step": 10, "lr": 0.1}], tmp_path / "curves.png") is None
    assert not (tmp_path / "curves.png").exists()
