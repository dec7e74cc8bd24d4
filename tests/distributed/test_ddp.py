"""torchrun on CPU (gloo, 2 processes): the same run as one process, one run directory, clean failure.

Each 2-process run (per-rank batch B) is compared with a 1-process run (batch 2B) of the
same seed, trained in this test process. BatchNorm statistics are frozen
(``trainer.batch_norm=frozen``): per-rank BatchNorm would normalise with B samples instead
of 2B, and SyncBatchNorm has no CPU implementation.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, read_summary, run_dirs
from torch.utils.data import DataLoader

from mtl_cli.engine.checkpoint import load_checkpoint
from mtl_cli.engine.distributed import RankInfo, ShardSampler
from mtl_cli.engine.evaluate import evaluate
from mtl_cli.engine.run import build_components, train_run
from mtl_cli.weighting import METHODS
from scale_helpers import TEST_METHODS, compose_config

pytestmark = pytest.mark.slow

ENTRY = Path(__file__).with_name("ddp_entry.py")
COMMON = [
    "task=cls+seg",
    "data.num_train=64",
    "data.num_val=30",
    "data.image_size=32",
    "backbone.width=8",
    "trainer.epochs=2",
    "trainer.vis_images=1",
    "trainer.batch_norm=frozen",
    "trainer.progress=false",
    "optim.name=sgd",
    "optim.lr=0.05",
]


def torchrun(args: list[str], cwd: Path, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    """Run the test entry point under torchrun with 2 CPU processes; kill the group on timeout."""
    (cwd / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(cwd / "tmp"), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", str(ENTRY), *args]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"torchrun {' '.join(args)} hung for {timeout}s")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), time.perf_counter() - started


def reference_run(run_dir: Path, *overrides: str) -> Path:
    """The 1-process run, trained in this process."""
    train_run(compose_config(*overrides, base=COMMON), run_dir)
    return run_dir


def rows(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "metrics.csv").open() as handle:
        return [{k: float(v) for k, v in row.items() if k != "time_s"} for row in csv.DictReader(handle)]


def max_param_difference(run_a: Path, run_b: Path) -> float:
    """Largest absolute difference over model and weighting tensors of the two last checkpoints."""
    a, b = (load_checkpoint(run / "checkpoints" / "last.pt") for run in (run_a, run_b))
    diffs = [
        (a[part][name].double() - b[part][name].double()).abs().max().item()
        for part in ("model", "weighting")
        for name in b[part]
        if b[part][name].is_floating_point()
    ]
    return max(diffs)


def assert_same_run(two_ranks: Path, one_rank: Path) -> None:
    assert max_param_difference(two_ranks, one_rank) < 2e-5
    for got, want in zip(rows(two_ranks), rows(one_rank), strict=True):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)  # train losses, weights, val metrics


def evaluate_checkpoint(run_dir: Path, shard: RankInfo | None) -> dict:
    """Metrics of the run's last checkpoint on the whole validation set, or on one rank's shard."""
    parts = build_components(compose_config("trainer.batch_size=8", base=COMMON))
    parts.model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"])
    val_set = parts.val_loader.dataset
    sampler = ShardSampler(len(val_set), shard or RankInfo())
    loader = DataLoader(val_set, batch_size=8, sampler=sampler, collate_fn=parts.val_loader.collate_fn)
    return evaluate(parts.model, loader, parts.tasks, parts.device)


def test_two_ranks_of_batch_b_train_like_one_process_of_batch_2b(tmp_path):
    proc, _ = torchrun([*COMMON, "trainer.batch_size=8"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(tmp_path)  # one run directory, written by rank 0 only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs", "tmp"]
    assert not list((tmp_path / "tmp").glob("mtl_cli_rank*"))  # the other rank's scratch folder is gone
    for name in (".hydra/config.yaml", "train.log", "metrics.csv", "checkpoints/last.pt", "val_predictions.png"):
        assert (run / name).is_file(), name
    assert (run / "train.log").read_text().count("epoch 2/2") == 1
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert summary["train_images_per_s"] > 0 and summary["peak_memory_mb"] > 0

    reference = reference_run(tmp_path / "one", "trainer.batch_size=16")
    assert read_summary(reference)["steps"] == summary["steps"] == 8
    assert_same_run(run, reference)  # validation metrics included
    reported = read_summary(run)["metrics"]
    assert reported == evaluate_checkpoint(run, shard=None)
    assert reported != evaluate_checkpoint(run, shard=RankInfo(rank=0, world_size=2))  # not rank 0's half alone


def test_gradient_and_learned_weightings_stay_in_sync_across_ranks(tmp_path, monkeypatch):
    """A sweep under torchrun: a per-task-gradient method (two-task MGDA) averaging its
    per-task gradients through the ``all_reduce_mean_`` hook, the same method without the
    hook (must NOT match), and a method with learned parameters; with accumulation."""
    sweep = ["trainer.accumulate=2", "hydra.sweep.dir=sweep"]
    names = ["test_min_norm", "test_min_norm_local", "test_log_var"]
    proc, _ = torchrun(["-m", *COMMON, *sweep, "trainer.batch_size=8", f"weighting.name={','.join(names)}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    jobs = {read_summary(d)["overrides"][-1].split("=")[1]: d for d in run_dirs(tmp_path / "sweep")}
    assert sorted(jobs) == sorted(names)

    for name, method in TEST_METHODS.items():
        monkeypatch.setitem(METHODS, name, method)
    min_norm = reference_run(tmp_path / "min_norm", "trainer.batch_size=16", "trainer.accumulate=2",
                             "weighting.name=test_min_norm")
    log_var = reference_run(tmp_path / "log_var", "trainer.batch_size=16", "trainer.accumulate=2",
                            "weighting.name=test_log_var")
    assert_same_run(jobs["test_min_norm"], min_norm)
    assert_same_run(jobs["test_log_var"], log_var)
    weights = [row["weight/cls"] for row in rows(min_norm)]
    assert all(0 < w < 1 for w in weights)  # the min-norm weights are not trivial
    assert max_param_difference(jobs["test_min_norm_local"], min_norm) > 1e-3
    learned = load_checkpoint(log_var / "checkpoints" / "last.pt")["weighting"]["log_var"]
    assert learned.abs().min() > 1e-3  # the learned parameters moved


def _processes_in(folder: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == folder:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_failing_rank_stops_every_rank_with_a_clear_message(tmp_path):
    proc, seconds = torchrun([*COMMON, "trainer.batch_size=8", "weighting.name=test_fails_on_rank1"], tmp_path,
                             timeout=180)
    assert proc.returncode != 0
    assert "mtl-train: error: rank 1: simulated bad batch on this rank; fix the data" in proc.stderr
    assert "Root Cause" in proc.stderr and "simulated bad batch" in proc.stderr.split("Root Cause", 1)[1]
    assert _processes_in(tmp_path) == []  # no rank left behind
    (run,) = run_dirs(tmp_path)
    assert read_summary(run)["status"] in {"running", "failed"}
    print(f"failed run stopped after {seconds:.1f}s")
