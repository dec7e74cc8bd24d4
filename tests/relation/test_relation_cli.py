"""``mtl-train relation=...`` end to end, and one clear line for every bad relation matrix."""

from __future__ import annotations

import csv

import pytest
from conftest import TINY, read_summary, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_learned_relation_writes_csv_heatmap_and_grouping(train):
    run = train("task=depth+seg+cls", "relation=learned", "relation.every_n_steps=2")
    rows = list(csv.reader((run / "relations.csv").open()))
    assert rows[0] == ["epoch", "measure", "task", "cls", "seg", "depth"]  # the run's task order
    assert {r[0] for r in rows[1:]} == {"1", "2", "all"}
    assert [r[2] for r in rows[1:4]] == ["cls", "seg", "depth"]
    assert (run / "relations.png").stat().st_size > 0
    relations = read_summary(run)["relations"]
    assert relations["tasks"] == ["cls", "seg", "depth"]
    assert [round(relations["cosine"][i][i], 5) for i in range(3)] == [1.0, 1.0, 1.0]
    assert relations["measurements"] == 4 * 2 // 2  # 4 steps per epoch, every 2nd, 2 epochs
    log = (run / "train.log").read_text()
    grouping = " ".join("{" + ", ".join(g) + "}" for g in relations["grouping"])
    assert f"suggested grouping {grouping}" in log


def test_given_relation_trains_and_is_recorded(train):
    run = train("task=seg+depth", "relation=given", "relation.lambda=0.01", "relation.matrix=[[0,1],[0.5,0]]")
    relations = read_summary(run)["relations"]
    assert relations["matrix"] == [[0.0, 1.0], [0.5, 0.0]] and relations["lambda"] == 0.01
    assert not (run / "relations.csv").exists()


@pytest.mark.parametrize(
    "matrix, message",
    [
        ("{cls: {depth: 1.0}}", "relation.matrix names task 'depth', which is not in task=cls+seg"),
        ("[[0,1,2],[1,0,2]]", "relation.matrix is not square: it has 2 rows but row 1 has 3 entries"),
        ("{seg: {cls: -0.5}}", "relation.matrix.seg.cls=-0.5 is negative"),
    ],
)
def test_bad_relation_matrix_fails_with_one_line(tmp_path, matrix, message):
    proc = run_cli("mtl_cli.train", [*TINY, "relation=given", f"relation.matrix={matrix}"], cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("mtl-train: error: ")
    assert message in lines[0]
    assert not list(tmp_path.rglob("summary.json"))  # rejected before any run directory is made
