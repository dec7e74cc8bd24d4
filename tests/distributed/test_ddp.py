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
from scale_helpers import TEST_METHODS, compose_config
from torch.utils.data import DataLoader

from mtl_cli.engine.build import build_evaluation
from mtl_cli.engine.checkpoint import load_checkpoint
from mtl_cli.engine.distributed import RankInfo, ShardSampler
from mtl_cli.engine.evaluate import evaluate
from mtl_cli.engine.run import train_run
from mtl_cli.weighting import METHODS

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ENTRY = Path(__file__).with_name("ddp_entry.py")
COMMON = [
    "task=cls+seg",
    "data.num_train=32",
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
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"torchrun {' '.join(args)} hung for {timeout}s") from None
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


TOLERANCE = 2e-5  # max parameter difference between the 2-rank and the 1-process run


def assert_same_run(two_ranks: Path, one_rank: Path) -> None:
    assert max_param_difference(two_ranks, one_rank) < TOLERANCE
    for got, want in zip(rows(two_ranks), rows(one_rank), strict=True):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)  # train losses, weights, val metrics


def evaluate_checkpoint(run_dir: Path, shard: RankInfo | None) -> dict:
    """Metrics of the run's last checkpoint on the whole validation set, or on one rank's shard."""
    setup = build_evaluation(compose_config("trainer.batch_size=8", base=COMMON))
    setup.model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"])
    val_set = setup.loader.dataset
    sampler = ShardSampler(len(val_set), shard or RankInfo())
    loader = DataLoader(val_set, batch_size=8, sampler=sampler, collate_fn=setup.loader.collate_fn)
    return evaluate(setup.model, loader, setup.tasks, setup.device)


SWEEP = ["ew", "test_min_norm", "test_min_norm_local", "test_log_var"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict[str, Path]:
    """One torchrun sweep (2 ranks, batch 8 per rank, 2 accumulated batches per step) over
    ``ew``, a per-task-gradient method (two-task MGDA) averaging its per-task gradients
    through the ``all_reduce_mean_`` hook, the same method without the hook, and a method
    with learned parameters. Returns ``{weighting: run directory}``."""
    root = tmp_path_factory.mktemp("ddp")
    args = ["-m", *COMMON, "trainer.batch_size=8", "trainer.accumulate=2", "hydra.sweep.dir=sweep"]
    proc, _ = torchrun([*args, f"weighting.name={','.join(SWEEP)}"], root)
    assert proc.returncode == 0, proc.stderr
    return {read_summary(d)["overrides"][-1].split("=")[1]: d for d in run_dirs(root)}


def reference(tmp_path: Path, monkeypatch, weighting: str) -> Path:
    """The same run in one process with batch 16."""
    for name, method in TEST_METHODS.items():
        monkeypatch.setitem(METHODS, name, method)
    overrides = ("trainer.batch_size=16", "trainer.accumulate=2", "trainer.vis_images=0", f"weighting.name={weighting}")
    return reference_run(tmp_path / weighting, *overrides)


def test_one_run_directory_per_job_written_by_rank_0(sweep):
    assert sorted(sweep) == sorted(SWEEP)
    root = next(iter(sweep.values())).parents[1]
    assert sorted(p.name for p in root.iterdir()) == ["sweep", "tmp"]
    assert not list((root / "tmp").glob("mtl_cli_rank*"))  # the other rank's scratch folder is gone
    for run in sweep.values():
        for name in (".hydra/config.yaml", "train.log", "metrics.csv", "checkpoints/last.pt", "val_predictions.png"):
            assert (run / name).is_file(), name
        assert (run / "train.log").read_text().count("epoch 2/2") == 1  # rank 0 logs, the other rank does not
        summary = read_summary(run)
        assert summary["status"] == "completed" and summary["world_size"] == 2 and summary["steps"] == 2
        assert summary["train_images_per_s"] > 0 and summary["peak_memory_mb"] > 0


def test_ew_two_ranks_of_batch_b_train_like_one_process_of_batch_2b(sweep, tmp_path, monkeypatch):
    run = sweep["ew"]
    assert_same_run(run, reference(tmp_path, monkeypatch, "ew"))  # validation metrics included
    reported = read_summary(run)["metrics"]
    assert reported == evaluate_checkpoint(run, shard=None)
    assert reported != evaluate_checkpoint(run, shard=RankInfo(rank=0, world_size=2))  # not rank 0's half alone


def test_gradient_method_averages_per_task_gradients_before_combining(sweep, tmp_path, monkeypatch):
    one_process = reference(tmp_path, monkeypatch, "test_min_norm")
    assert_same_run(sweep["test_min_norm"], one_process)
    assert all(0 < row["weight/cls"] < 1 for row in rows(one_process))  # the min-norm weights are not trivial
    # combining each rank's own gradients gives another (wrong) update
    assert max_param_difference(sweep["test_min_norm_local"], one_process) > 10 * TOLERANCE


def test_learned_weighting_parameters_stay_in_sync(sweep, tmp_path, monkeypatch):
    one_process = reference(tmp_path, monkeypatch, "test_log_var")
    assert_same_run(sweep["test_log_var"], one_process)
    learned = load_checkpoint(one_process / "checkpoints" / "last.pt")["weighting"]["log_var"]
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
    proc, seconds = torchrun(
        [*COMMON, "trainer.batch_size=8", "weighting.name=test_fails_on_rank1"], tmp_path, timeout=180
    )
    assert proc.returncode != 0
    assert "mtl-train: error: rank 1: simulated bad batch on this rank; fix the data" in proc.stderr
    assert "Root Cause" in proc.stderr and "simulated bad batch" in proc.stderr.split("Root Cause", 1)[1]
    assert _processes_in(tmp_path) == []  # no rank left behind
    (run,) = run_dirs(tmp_path)  # one run directory (a single run: hydra.run.dir)
    assert (run / ".hydra" / "config.yaml").is_file()
    assert read_summary(run)["status"] in {"running", "failed"}
    print(f"failed run stopped after {seconds:.1f}s")
