"""The default-run benchmark end to end on a tiny budget: one timed run per seed, means against targets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TINY, cli_env, read_summary

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SCRIPT = str(REPO / "benchmarks" / "bench_default_run.py")


def bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *args, "--out", str(tmp_path / "runs")],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_bench_default_run_times_each_seed_and_compares_the_means_with_the_targets(tmp_path: Path):
    overrides = ["task=cls+seg", *TINY, "trainer.vis_images=0"]
    proc = bench(tmp_path, "--overrides", *overrides, "--seeds", "0", "1", "--target", "cls.accuracy=0", "seg.miou=1")
    assert proc.returncode == 0, proc.stderr
    runs = [read_summary(tmp_path / "runs" / f"s{seed}") for seed in (0, 1)]
    assert [r["config"]["trainer"]["seed"] for r in runs] == [0, 1]
    lines = proc.stdout.splitlines()
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ")}
    assert set(rows) >= {"seed", "0", "1", "mean"}
    assert "reference step ms" in rows["seed"]
    reference = [float(rows[seed].split(" | ")[2]) for seed in ("0", "1")]
    assert all(ms > 0 for ms in reference)  # the machine's speed, measured before each run
    mean_cls = sum(r["metrics"]["cls"]["accuracy"] for r in runs) / 2
    assert f"{mean_cls:.4f}" in rows["mean"]
    targets = lines[-1]
    assert f"cls.accuracy {mean_cls:.4f} meets 0" in targets and "seg.miou" in targets and "misses 1" in targets
    # a second run into the same folder is refused: runs are never reused
    again = bench(tmp_path, "--overrides", *overrides, "--seeds", "0")
    assert again.returncode != 0 and "exists" in again.stderr
