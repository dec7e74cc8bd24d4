"""mtl-report on hand-written run directories: rows, delta-m, best runs, problems, files, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mtl_cli.report import main as report_main
from mtl_cli.reporting import build_report, write_report

DIRECTIONS = {"cls": {"accuracy": True}, "seg": {"miou": True, "pixel_accuracy": True}}
PRIMARY = {"cls": "accuracy", "seg": "miou"}
BASE_CONFIG = {"optim": {"lr": 0.01}, "backbone": {"width": 8}}


def write_run(folder: Path, status: str, tasks: list[str], overrides: list[str], metrics=None, **extra) -> Path:
    folder.mkdir(parents=True)
    config = {**BASE_CONFIG, "tasks": {t: {"kind": t} for t in tasks}}
    summary = {
        "status": status,
        "tasks": tasks,
        "overrides": overrides,
        "config": config,
        "metric_directions": {t: DIRECTIONS[t] for t in tasks},
        "primary_metrics": {t: PRIMARY[t] for t in tasks},
        **({"metrics": metrics, "best_metrics": metrics} if metrics else {}),
        **extra,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "multirun"
    write_run(root / "0", "completed", ["cls"], ["task=cls"], {"cls": {"accuracy": 0.5}})
    write_run(root / "1", "completed", ["seg"], ["task=seg"], {"seg": {"miou": 0.4, "pixel_accuracy": 0.8}})
    weights = "loss.weights.seg"
    write_run(
        root / "2",
        "completed",
        ["cls", "seg"],
        ["task=cls+seg", f"{weights}=0.5"],
        {"cls": {"accuracy": 0.6}, "seg": {"miou": 0.3, "pixel_accuracy": 0.8}},
    )
    write_run(root / "3", "failed", ["cls", "seg"], ["task=cls+seg", f"{weights}=2.0"], error="the loss became NaN")
    killed = write_run(root / "4", "running", ["cls", "seg"], ["task=cls+seg", f"{weights}=4.0"])
    (killed / "checkpoints").mkdir()
    (killed / "checkpoints" / "last.pt").write_bytes(b"")
    (root / "5" / ".hydra").mkdir(parents=True)  # a job that failed before training: no summary.json
    (root / "5" / ".hydra" / "config.yaml").write_text("tasks:\n  cls: {kind: cls}\n")
    (root / "5" / ".hydra" / "overrides.yaml").write_text("- task=cls\n- optim.lr=-1\n")
    return root


def test_table_rows_delta_m_best_and_problems(sweep, capsys):
    report_main([str(sweep)])
    out = capsys.readouterr().out
    md = (sweep / "report.md").read_text()
    assert out.startswith(md)
    table = [line for line in md.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert [line.split("|")[1].strip() for line in table] == ["0", "1", "2", "3", "4", "5"]
    header = md.splitlines()[2]
    assert "task" in header and "loss.weights.seg" in header and "Δm % ↑" in header and "seg.miou ↑" in header
    # Hand computation for run 2: cls +20%, seg.miou -25%, pixel accuracy 0%  ->  -5/3 %
    row2 = table[2].split("|")
    assert row2[-3].strip() == "-1.67" and row2[-2].strip() == "cls: 0, seg: 1"
    with (sweep / "report.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["run"] for r in rows] == ["0", "1", "2", "3", "4", "5"]
    assert float(rows[2]["delta_m"]) == pytest.approx((20.0 - 25.0 + 0.0) / 3)
    assert rows[0]["delta_m"] == "" and rows[2]["loss.weights.seg"] == "0.5"
    assert [r["status"] for r in rows] == ["completed", "completed", "completed", "failed", "running", "no summary"]
    best = md.split("## Best runs")[1].split("##")[0]
    assert "| cls.accuracy ↑ | 2 | 0.6000 |" in best and "| seg.miou ↑ | 1 | 0.4000 |" in best
    assert "| Δm % ↑ | 2 | -1.67 |" in best
    problems = md.split("## Failed or unfinished runs")[1].split("##")[0]
    assert "`3`" in problems and "failed; the loss became NaN" in problems
    assert "`4`" in problems and "unfinished" in problems
    assert f"resume: mtl-train task=cls+seg loss.weights.seg=4.0 trainer.resume={sweep / '4'}" in problems
    assert "`5`" in problems and "failed before training started" in problems
    assert (sweep / "pareto.png").is_file() and "Runs on the front: 2" in md


def test_baselines_from_elsewhere_and_best_metrics(tmp_path):
    base = tmp_path / "baselines"
    write_run(base / "0", "completed", ["cls"], ["task=cls"], {"cls": {"accuracy": 0.5}})
    write_run(base / "1", "completed", ["seg"], ["task=seg"], {"seg": {"miou": 0.5, "pixel_accuracy": 0.5}})
    sweep = tmp_path / "sweep"
    write_run(
        sweep / "0",
        "completed",
        ["cls", "seg"],
        ["loss.weights.seg=1.0"],
        {"cls": {"accuracy": 1.0}, "seg": {"miou": 0.5, "pixel_accuracy": 0.5}},
    )
    write_run(
        sweep / "1",
        "completed",
        ["cls", "seg"],
        ["loss.weights.seg=2.0"],
        {"cls": {"accuracy": 0.5}, "seg": {"miou": 0.75, "pixel_accuracy": 1.0}},
    )
    without = build_report([sweep])
    assert [r.delta_m for r in without.rows] == [None, None]
    assert "no completed single-task run of cls, seg" in without.rows[0].note
    report = build_report([sweep], baselines=[base])
    assert [r.delta_m for r in report.rows] == pytest.approx([100 / 3, (50 + 100) / 3])
    assert [r.run.name for r in report.rows] == ["0", "1"]  # baselines are references, not rows
    written = write_report(report, tmp_path / "out", pareto=("seg.pixel_accuracy", "cls.accuracy"))
    assert {p.name for p in written} == {"report.md", "report.csv", "pareto.png"}
    assert report.pareto_front == ["0", "1"]


def test_baseline_differences_are_noted(tmp_path):
    write_run(tmp_path / "a", "completed", ["cls"], ["task=cls"], {"cls": {"accuracy": 0.5}})
    run = write_run(tmp_path / "b", "completed", ["cls", "seg"], [], {"cls": {"accuracy": 0.5}, "seg": {"miou": 0.5}})
    summary = json.loads((run / "summary.json").read_text())
    summary["config"]["optim"]["lr"] = 0.1
    (run / "summary.json").write_text(json.dumps(summary))
    write_run(tmp_path / "c", "completed", ["seg"], ["task=seg"], {"seg": {"miou": 0.25}})
    report = build_report([tmp_path])
    row = report.rows[1]
    assert row.delta_m == pytest.approx(50.0)
    assert "cls baseline a differs in optim.lr" in row.note and "seg baseline c differs in optim.lr" in row.note


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/nope"], "does not exist"),
        (["{tmp}"], "no runs"),
        (["{sweep}/0", "{sweep}/1"], "--out"),
        (["{sweep}", "--pareto", "cls.accuracy", "depth.abs_err"], "no run has depth.abs_err"),
    ],
)
def test_cli_errors_are_one_line(sweep, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    args = [a.format(tmp=tmp_path / "empty", sweep=sweep) for a in args]
    with pytest.raises(SystemExit) as exc:
        report_main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtl-report: error:") and message in err[0]
