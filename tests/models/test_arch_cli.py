"""``mtl-train arch=...`` end to end, and one clear line for every bad architecture choice."""

from __future__ import annotations

import csv

import pytest
from conftest import TINY, read_summary, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.mark.parametrize(  # the shared_* models are the default model class, run by every e2e test
    "arch, task", [("cross_stitch", "seg+cls"), ("mtan", "cls+seg+depth"), ("mmoe", "depth+cls")]
)
def test_every_architecture_trains_from_the_command_line(train, arch, task):
    run = train(f"arch={arch}", f"task={task}", "trainer.epochs=1", "trainer.max_steps=2")
    summary = read_summary(run)
    assert summary["status"] == "completed"
    params = summary["params"]
    assert params["total"] == params["shared"] + sum(params[t] for t in summary["tasks"])
    assert all(params[t] > 0 for t in summary["tasks"])
    if arch == "cross_stitch":
        rows = list(csv.reader((run / "cross_stitch.csv").open()))
        assert rows[0] == ["stage", "task", "cls", "seg"] and len(rows) == 1 + 3 * 2
    else:
        assert not (run / "cross_stitch.csv").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["arch.branch_at=layer4"], "arch.branch_at=layer4: the network has no such stage; its stages are 0=stem"),
        (["arch=mtan", "backbone=mobilenet_v3_small"], "arch=mtan cannot use backbone=mobilenet_v3_small"),
    ],
)
def test_bad_architecture_choices_fail_with_one_line(tmp_path, args, message):
    proc = run_cli("mtl_cli.train", [*TINY, *args], cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("mtl-train: error: ")
    assert message in lines[0]
