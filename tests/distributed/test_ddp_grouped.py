"""torchrun on CPU (gloo, 2 processes): ``arch=grouped arch.groups=auto`` and ``data=multi``."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import read_summary, run_dirs
from data.data_layouts import write_folder
from distributed.test_ddp import COMMON, torchrun

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SETTINGS = [arg for arg in COMMON if not arg.startswith(("task=", "data."))]


def _one_run(tmp_path: Path, *args: str) -> dict:
    proc, _ = torchrun([*args], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["world_size"] == 2
    return summary


def test_auto_groups_are_the_same_on_every_rank_and_train(tmp_path):
    args = [
        *SETTINGS,
        "data.num_train=32",
        "data.num_val=30",
        "data.image_size=32",
        "task=cls+seg+depth",
        "arch=grouped",
        "arch.branch_at=1",
        "arch.groups=auto",
        "arch.warmup_steps=2",
        "trainer.epochs=1",
    ]
    summary = _one_run(tmp_path, *args)
    groups = summary["grouping"]["groups"]
    assert sorted(t for g in groups for t in g) == ["cls", "depth", "seg"]
    assert summary["config"]["arch"]["groups"] == groups  # rank 0's groups, built on both ranks


def test_multi_datasets_train_with_a_sampler_per_task(tmp_path):
    a = write_folder(tmp_path / "a", n_train=8, n_val=4, seed=0)
    b = write_folder(tmp_path / "b", n_train=16, n_val=3, seed=1)
    args = [
        *SETTINGS,
        "data=multi",
        "task=cls+seg",
        "trainer.batch_size=2",
        "trainer.vis_images=0",
        f"+data.sources.cls={{name: folder, root: {a}, tasks: {{cls: {{kind: cls, num_classes: 3}}}}}}",
        f"+data.sources.seg={{name: folder, root: {b}, tasks: {{seg: {{kind: seg, num_classes: 4, ignore_index: 255}}}}}}",
    ]
    summary = _one_run(tmp_path, *args)
    assert summary["steps"] == 2 * 4  # seg: 16 images, 8 per rank, batches of 2 -> 4 steps per epoch
    assert set(summary["metrics"]) == {"cls", "seg"}
