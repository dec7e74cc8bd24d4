"""The quality benchmark end to end on a tiny budget: baselines, ew, the relation run, the table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TINY, cli_env, read_summary

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_bench_quality_trains_baselines_ew_and_the_relation_run_and_writes_the_table(tmp_path: Path):
    out = tmp_path / "quality"
    args = [
        "--suites",
        "cls+seg",
        "--methods",
        "ew",
        "--seeds",
        "0",
        "--relation",
        "--overrides",
        *TINY,
        "trainer.epochs=1",
        "trainer.vis_images=0",
    ]
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_quality.py"), *args, "--out", str(out)],
        cwd=tmp_path,
        env=cli_env(),
        check=True,
        capture_output=True,
        timeout=600,
    )
    runs = out / "cls_seg"
    assert sorted(p.name for p in runs.iterdir()) == ["cls-s0", "ew-s0", "relation-s0", "seg-s0"]
    relations = read_summary(runs / "relation-s0")["relations"]
    assert relations["matrix"] == [[0.0, 1.0], [1.0, 0.0]]
    assert "relation/omega" in (runs / "relation-s0" / "metrics.csv").read_text().splitlines()[0]
    assert "relations" not in read_summary(runs / "ew-s0")
    table = (out / "results.md").read_text()
    assert "Command: `python benchmarks/bench_quality.py" in table and "## cls+seg" in table
    rows = [line for line in table.splitlines() if line.startswith("| task=")]
    assert len(rows) == 4, rows
    assert any("relation=given, relation.matrix=[[0,1],[1,0]]" in row for row in rows), rows
