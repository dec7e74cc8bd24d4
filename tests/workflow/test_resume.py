"""Exact resume (after SIGKILL or a signal mid-epoch), signal handling, bad checkpoints, run-dir safety."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY, cli_env, read_summary, run_cli
from wf_helpers import compose_cfg, csv_rows, make_trainer, one_thread, same_weights, start_train, wait_for  # noqa: F401

from mtl_cli.engine.checkpoint import load_checkpoint
from mtl_cli.engine.resume import ResumePoint
from mtl_cli.engine.run import train_run
from mtl_cli.engine.rundir import claim_directory
from mtl_cli.engine.signals import StopOnSignal, TrainingInterrupted
from mtl_cli.errors import UserError

# 8 steps per epoch, so a signal sent after epoch 1 lands in the middle of training.
ARGS = [
    *TINY,
    "data.num_train=128",
    "trainer.epochs=3",
    "optim.lr=0.01",
    "trainer.vis_images=0",
    "trainer.progress=false",
]
COMPARED = ("metrics", "best_metrics", "best_epoch", "epochs", "steps", "monitor")


def test_stop_on_signal_records_the_first_signal_and_aborts_on_the_second(monkeypatch):
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)  # outside torchrun (another test may have joined one)
    # Python's own SIGINT handling, also where the tests inherited SIGINT ignored (run as a background job)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with StopOnSignal() as stop:
            assert stop.signum is None
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.signum == signal.SIGTERM
            with pytest.raises(KeyboardInterrupt):  # second signal: the previous (default) handling
                os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGTERM) is previous
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert TrainingInterrupted(signal.SIGINT, None).exit_code == 130


def test_under_torchrun_a_repeated_signal_does_not_abort(monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    with StopOnSignal() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # the agent passes on what the worker also got itself
        assert stop.signum == signal.SIGINT


# Methods with state beyond the model (learned, loss history, random, previous solution, EMA),
# architectures with their own shared parts, and gradient accumulation.
STATEFUL = [
    ("weighting=uw",),
    ("weighting=dwa",),
    ("weighting=rlw",),
    ("weighting=famo",),
    ("weighting=gradnorm",),
    ("weighting=gradvac",),
    ("weighting=nash_mtl",),
    ("arch=mtan",),
    ("arch=cross_stitch",),
    ("trainer.accumulate=2",),
]


def _interrupt_and_resume(tmp_path: Path, monkeypatch, overrides: tuple[str, ...], stop_step: int):
    """Train uninterrupted; train again with SIGTERM sent during optimiser step ``stop_step``; resume that."""
    base = (
        "data.num_train=96",
        "optim.lr=0.01",
        "trainer.progress=false",
        "trainer.vis_images=0",
        "trainer.log_every_n_steps=2",
        *overrides,
    )
    cfg = compose_cfg(*base)
    reference = make_trainer(cfg, tmp_path / "ref")
    reference.fit()

    stopped = make_trainer(cfg, tmp_path / "stopped")
    backward, sent = stopped.weighting.backward, []

    def backward_then_signal(losses, ctx):
        weights = backward(losses, ctx)
        if ctx.step == stop_step and not sent:
            sent.append(ctx.step)
            os.kill(os.getpid(), signal.SIGTERM)
        return weights

    monkeypatch.setattr(stopped.weighting, "backward", backward_then_signal)
    with pytest.raises(TrainingInterrupted) as info:
        stopped.fit()
    resumed_cfg = compose_cfg(*base, f"trainer.resume={tmp_path / 'stopped'}")
    resumed = make_trainer(resumed_cfg, tmp_path / "resumed")
    ResumePoint.load(resumed_cfg).apply(resumed)
    resumed.fit()
    return reference, info.value, resumed


def test_signal_mid_epoch_saves_and_resume_equals_uninterrupted(tmp_path, monkeypatch):
    reference, interrupted, resumed = _interrupt_and_resume(tmp_path, monkeypatch, (), stop_step=8)
    assert interrupted.exit_code == 128 + signal.SIGTERM
    checkpoint = tmp_path / "stopped" / "checkpoints" / "last.pt"
    assert interrupted.checkpoint == checkpoint
    state = load_checkpoint(checkpoint)
    assert state["train_state"]["epoch"] == 1 and state["train_state"]["step"] == 9  # the signalled step finished
    assert state["epoch_progress"]["epoch"] == 2 and state["epoch_progress"]["batches"] == 3
    assert csv_rows(tmp_path / "resumed") == csv_rows(tmp_path / "ref")
    assert resumed.state.last_metrics == reference.state.last_metrics
    assert same_weights(resumed.model.state_dict(), reference.model.state_dict())
    assert same_weights(resumed.optimizer.state_dict()["state"][0], reference.optimizer.state_dict()["state"][0])


@pytest.mark.slow
@pytest.mark.parametrize("overrides", STATEFUL, ids=lambda o: " ".join(o))
def test_exact_resume_with_stateful_methods_architectures_and_accumulation(tmp_path, monkeypatch, overrides):
    stop_step = 4 if "trainer.accumulate=2" in overrides else 8  # in epoch 2 either way
    reference, _, resumed = _interrupt_and_resume(tmp_path, monkeypatch, overrides, stop_step)
    assert csv_rows(tmp_path / "resumed") == csv_rows(tmp_path / "ref")
    assert same_weights(resumed.model.state_dict(), reference.model.state_dict())
    assert same_weights(resumed.weighting.state_dict(), reference.weighting.state_dict())
    weights_csv = (tmp_path / "ref" / "weights.csv").read_text()
    assert weights_csv.count("\n") >= 3 and (tmp_path / "resumed" / "weights.csv").read_text() == weights_csv


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run with ARGS (in this process: what mtl-train runs, without the start-up)."""
    run_dir = tmp_path_factory.mktemp("reference") / "ref"
    train_run(compose_cfg(*ARGS[len(TINY) :]), run_dir, overrides=ARGS)
    return run_dir


def _assert_same_run(run: Path, reference: Path) -> None:
    assert read_summary(run)["status"] == "completed"
    assert {k: read_summary(run)[k] for k in COMPARED} == {k: read_summary(reference)[k] for k in COMPARED}
    assert csv_rows(run) == csv_rows(reference)
    for name in ("last.pt", "best.pt"):
        ours, theirs = load_checkpoint(run / "checkpoints" / name), load_checkpoint(reference / "checkpoints" / name)
        assert ours["train_state"]["epoch"] == theirs["train_state"]["epoch"]
        assert same_weights(ours["model"], theirs["model"]), name


@pytest.mark.e2e
@pytest.mark.slow
def test_sigkill_after_an_epoch_then_resume_is_bit_identical(tmp_path, reference):
    proc = start_train([*ARGS, "hydra.run.dir=killed"], cwd=tmp_path)
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    wait_for(last.is_file, what="the first checkpoint")
    os.kill(proc.pid, signal.SIGSTOP)  # freeze it, read which epoch the checkpoint holds, then kill
    epoch = load_checkpoint(last)["train_state"]["epoch"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= epoch < 3, "the run finished before it could be killed"
    killed = {p: p.read_bytes() for p in (tmp_path / "killed").rglob("*") if p.is_file() and ".tmp" not in p.name}
    assert read_summary(tmp_path / "killed")["status"] == "running"  # unfinished, as the report lists it

    # Resumed in this process (the CLI path of resume is exercised by the SIGINT test below).
    resumed = tmp_path / "resumed"
    train_run(compose_cfg(*ARGS[len(TINY) :], f"trainer.resume={tmp_path / 'killed'}"), resumed)
    _assert_same_run(resumed, reference)
    source = str(tmp_path / "killed" / "checkpoints" / "last.pt")
    assert read_summary(resumed)["resumed_from"] == {"checkpoint": source, "epoch": epoch}
    assert {p: p.read_bytes() for p in killed} == killed  # the earlier run directory is untouched


@pytest.mark.e2e
@pytest.mark.slow
def test_sigint_stops_after_the_step_saves_and_prints_the_resume_command(tmp_path, reference):
    proc = start_train([*ARGS, "hydra.run.dir=stopped"], cwd=tmp_path)
    log = tmp_path / "stopped" / "train.log"
    wait_for(lambda: log.is_file() and "epoch 1/3" in log.read_text(), what="the end of epoch 1")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    summary = read_summary(tmp_path / "stopped")
    assert summary["status"] == "interrupted"
    command = stderr.strip().splitlines()[-1].strip()
    assert "SIGINT" in stderr and command == summary["resume_command"]
    assert command.startswith("mtl-train ") and command.endswith("trainer.resume=" + str(tmp_path / "stopped"))
    assert (tmp_path / "stopped" / "checkpoints" / "last.pt").is_file()

    run_cli("mtl_cli.train", [*shlex.split(command)[1:], "hydra.run.dir=resumed"], cwd=tmp_path)
    _assert_same_run(tmp_path / "resumed", reference)
    summary = read_summary(tmp_path / "resumed")
    assert summary["command"] == f"{command} hydra.run.dir=resumed"
    assert summary["config"]["trainer"]["resume"] == str(tmp_path / "stopped")


@pytest.mark.e2e
@pytest.mark.slow
def test_ranks_agree_on_stopping_under_torchrun(tmp_path):
    (tmp_path / "tmp").mkdir()
    env = {**cli_env(), "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    args = [
        *ARGS,
        "data.num_train=512",
        "trainer.batch_norm=frozen",
        "trainer.log_every_n_steps=2",
        "hydra.run.dir=ddp",
    ]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            str(REPO / "mtl_cli" / "train.py"),
            *args,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    log = tmp_path / "ddp" / "train.log"
    try:
        wait_for(lambda: log.is_file() and "epoch 1/3" in log.read_text(), what="the end of epoch 1")
        time.sleep(0.1)  # most likely inside epoch 2 (16 steps per rank)
        os.killpg(proc.pid, signal.SIGTERM)  # every process of the job, as SLURM or a terminal does
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert stderr.count("resume with:") == 1, stderr  # rank 0 saves and says so
    summary = read_summary(tmp_path / "ddp")
    assert summary["status"] == "interrupted" and summary["world_size"] == 2
    state = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    progress = state.get("epoch_progress")
    assert progress is None or progress["steps"] % 2 == 0  # the ranks agree at sync points (every 2 steps)


@pytest.mark.e2e
@pytest.mark.slow
def test_corrupt_checkpoint_via_cli_is_one_line_error(tmp_path, reference):
    data = (reference / "checkpoints" / "last.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    proc = run_cli("mtl_cli.train", [*ARGS, "trainer.resume=cut.pt"], cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("mtl-train: error: checkpoint cut.pt is truncated or corrupt")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_or_mismatched_checkpoint_is_refused_on_resume(tmp_path, monkeypatch, reference):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": "mtl_cli-checkpoint", "model": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="refused"):
        ResumePoint.load(compose_cfg("trainer.resume=evil.pt"))
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(UserError, match=r"trained for task=cls\+seg, not task=cls; resume with the run's own"):
        ResumePoint.load(compose_cfg("task=cls", f"trainer.resume={reference}"))
    with pytest.raises(UserError, match=r"arch|backbone.width=8 \(asked: 16\)"):
        ResumePoint.load(compose_cfg(*ARGS[len(TINY) :], "backbone.width=16", f"trainer.resume={reference}"))
    with pytest.raises(UserError, match="does not exist"):
        ResumePoint.load(compose_cfg("trainer.resume=nowhere"))
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(UserError, match="no checkpoints/last.pt"):
        ResumePoint.load(compose_cfg("trainer.resume=empty_run"))


def test_claim_directory(tmp_path):
    claim_directory(tmp_path / "new" / "run", "hydra.run.dir", ".hydra")
    assert (tmp_path / "new" / "run" / ".hydra").is_dir()
    with pytest.raises(UserError, match="hydra.run.dir=.* already holds an earlier run"):
        claim_directory(tmp_path / "new" / "run", "hydra.run.dir", ".hydra")
    (tmp_path / "empty").mkdir()
    claim_directory(tmp_path / "empty", "hydra.sweep.dir", "command.txt", "mtl-train -m task=cls,seg")
    assert (tmp_path / "empty" / "command.txt").read_text() == "mtl-train -m task=cls,seg\n"


@pytest.mark.e2e
@pytest.mark.slow
def test_a_run_never_reuses_an_earlier_run_directory(tmp_path, reference):
    before = {p: p.read_bytes() for p in reference.rglob("*") if p.is_file()}
    proc = run_cli("mtl_cli.train", [*ARGS, f"hydra.run.dir={reference}"], cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "already holds an earlier run" in lines[0] and "hydra.run.dir" in lines[0]
    assert {p: p.read_bytes() for p in reference.rglob("*") if p.is_file()} == before
