"""``mtl-train arch=grouped`` with ``groups=auto`` and ``groups=from:<run dir>``: recorded, reproducible, resumable."""

from __future__ import annotations

import csv

import pytest
import yaml
from conftest import TINY, read_summary, run_cli, run_dirs

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TASKS = "task=cls+seg+depth"
GROUPED = ["arch=grouped", "arch.branch_at=1", "trainer.epochs=1", "trainer.max_steps=3"]


def _history(run) -> list[dict]:
    with (run / "metrics.csv").open() as handle:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(handle)]


def test_auto_groups_are_measured_recorded_and_reproduce(train, tmp_path):
    run = train(TASKS, *GROUPED, "arch.groups=auto", "arch.warmup_steps=3")
    summary = read_summary(run)
    grouping = summary["grouping"]
    groups = grouping["groups"]
    assert summary["status"] == "completed" and grouping["source"] == "auto"
    assert sorted(t for g in groups for t in g) == ["cls", "depth", "seg"]
    assert grouping["warmup_steps"] == 3 and grouping["measurements"] == 3 and grouping["warmup_seconds"] > 0
    assert len(grouping["affinity"]["lookahead"]) == 3
    assert (run / "warmup_relations.csv").is_file() and (run / "warmup_relations.png").is_file()
    assert summary["config"]["arch"]["groups"] == groups
    assert yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["arch"]["groups"] == groups
    params = summary["params"]
    assert params["total"] == params["shared"] + sum(v for k, v in params.items() if k not in ("total", "shared"))

    before = set(run_dirs(tmp_path))
    run_cli("mtl_cli.train", ["--config-dir", str(run / ".hydra"), "--config-name", "config"], cwd=tmp_path)
    (again,) = [d for d in run_dirs(tmp_path) if d not in before]
    assert "grouping" not in read_summary(again)  # explicit groups: nothing measured
    assert read_summary(again)["metrics"] == summary["metrics"]
    assert _history(again) == _history(run)

    resume = ["trainer.epochs=2", "trainer.max_steps=null", f"trainer.resume={run}"]
    resumed = train(TASKS, *GROUPED, "arch.groups=auto", "arch.warmup_steps=3", *resume)
    record = read_summary(resumed)["grouping"]
    assert record["source"] == "checkpoint" and record["groups"] == groups and "affinity" not in record
    assert read_summary(resumed)["epochs"] == 2


def test_groups_from_a_learned_relation_run(train):
    learned = train(TASKS, "relation=learned", "relation.every_n_steps=1", "trainer.epochs=1", "trainer.max_steps=2")
    suggested = read_summary(learned)["relations"]["grouping"]
    run = train(TASKS, *GROUPED, f"arch.groups=from:{learned}")
    grouping = read_summary(run)["grouping"]
    assert grouping["source"] == f"from:{learned}" and grouping["groups"] == suggested
    assert read_summary(run)["config"]["arch"]["groups"] == suggested


@pytest.mark.parametrize(
    "args, message",
    [
        (["arch.groups=[[cls],[seg]]"], "arch.groups: no group holds depth; put every task in exactly one group"),
        (["arch.groups=from:nowhere"], "arch.groups=from:nowhere: no suggested grouping there"),
        (["arch=shared_layers", "arch.groups=[[cls,seg,depth]]"], "is not used by arch=shared_layers"),
    ],
)
def test_bad_groups_fail_with_one_line(tmp_path, args, message):
    proc = run_cli("mtl_cli.train", [*TINY, TASKS, "arch=grouped", *args], cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("mtl-train: error: ")
    assert message in lines[0]
