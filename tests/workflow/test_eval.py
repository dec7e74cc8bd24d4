"""mtl-eval: rebuilds the model from the checkpoint's config and reproduces the run's own val metrics."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, read_summary, run_cli
from wf_helpers import compose_cfg, one_thread  # noqa: F401 (autouse)

from mtl_cli.engine.checkpoint import load_checkpoint
from mtl_cli.engine.eval_run import EvalOptions, evaluate_checkpoint
from mtl_cli.engine.run import train_run
from mtl_cli.errors import UserError
from mtl_cli.eval import main as eval_main

SETTINGS = ["optim.lr=0.01", "trainer.epochs=3", "trainer.vis_images=0", "trainer.progress=false"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    train_run(compose_cfg(*SETTINGS), run_dir, overrides=[*TINY, *SETTINGS])
    return run_dir


def _eval_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``mtl-eval <args>`` in this process: exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["mtl-eval", *args])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    code = 0
    try:
        eval_main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.e2e
@pytest.mark.slow
def test_eval_of_a_run_dir_matches_its_final_val_metrics(run, tmp_path):
    proc = run_cli("mtl_cli.eval", [f"ckpt={run}", "trainer.device=cpu"], cwd=tmp_path)
    written = run / "checkpoints" / "last.eval-val.json"
    result = json.loads(written.read_text())
    assert result["metrics"] == read_summary(run)["metrics"]  # bit-identical on CPU
    assert result["epoch"] == 3 and result["split"] == "val" and result["images"] == 32
    assert result["metric_directions"]["seg"] == {"miou": True, "pixel_accuracy": True}
    assert f"metrics written to {written}" in proc.stdout and "cls  accuracy" in proc.stdout


def test_best_checkpoint_split_and_overrides(run, tmp_path, monkeypatch, capsys):
    summary = read_summary(run)
    best = evaluate_checkpoint(EvalOptions(str(run / "checkpoints" / "best.pt")))
    assert best["metrics"] == summary["best_metrics"] and best["epoch"] == summary["best_epoch"]
    out_file = tmp_path / "m.json"
    code, out, _ = _eval_cli(
        monkeypatch,
        capsys,
        f"ckpt={run}",
        "split=train",
        "data.num_train=48",
        "trainer.batch_size=5",
        "task=seg+cls",
        "backbone=small_cnn",
        f"output={out_file}",
    )
    assert code == 0 and "train split, 48 images" in out
    assert json.loads(out_file.read_text())["images"] == 48


@pytest.mark.parametrize(
    "args, message",
    [
        (["task=cls+depth"], r"trained for task=cls\+seg, not task=cls\+depth"),
        (["backbone.width=16"], r"backbone.width=8 \(asked: 16\)"),
        (["backbone=resnet18"], r"backbone.name=small_cnn \(asked: resnet18\)"),
        (["split=test"], "split=test: choose one of val, train"),
        (["trainer.batch_size=abc"], "trainer.batch_size=abc"),
        (["data.num_val=1,2"], "sweeps are not supported"),
    ],
)
def test_eval_refuses_what_does_not_fit(run, monkeypatch, capsys, args, message):
    code, _, err = _eval_cli(monkeypatch, capsys, f"ckpt={run}", *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("mtl-eval: error:"), err
    assert re.search(message, lines[0]), lines[0]


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_corrupt_and_malicious_checkpoints(run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = (run / "checkpoints" / "last.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:1000])
    torch.save({"format": "mtl_cli-checkpoint", "model": _Payload()}, tmp_path / "evil.pt")
    code, _, err = _eval_cli(monkeypatch, capsys, "ckpt=evil.pt")
    assert code == 2 and "refused" in err and not (tmp_path / "pwned").exists()
    code, _, err = _eval_cli(monkeypatch, capsys, "ckpt=cut.pt")
    assert code == 2 and "truncated or corrupt" in err
    code, _, err = _eval_cli(monkeypatch, capsys)
    assert code == 2 and err.startswith("usage: mtl-eval")  # no arguments: the usage, as an error (issue 12.13)
    code, _, err = _eval_cli(monkeypatch, capsys, "split=val")
    assert code == 2 and "no checkpoint given" in err
    with pytest.raises(UserError, match="does not exist"):
        evaluate_checkpoint(EvalOptions("nowhere.pt"))
    assert load_checkpoint(run / "checkpoints" / "last.pt")["overrides"] == [*TINY, *SETTINGS]


def test_eval_never_replaces_a_file_it_did_not_write(run, tmp_path, monkeypatch, capsys):
    """Issue 12.1: output= at a checkpoint or a summary is refused; overwrite=true replaces atomically."""
    checkpoint = run / "checkpoints" / "last.pt"
    before = {p: p.read_bytes() for p in (checkpoint, run / "summary.json")}
    for target in before:
        code, _, err = _eval_cli(monkeypatch, capsys, f"ckpt={run}", f"output={target}")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "already exists" in lines[0] and "overwrite=true" in lines[0], err
    assert all(p.read_bytes() == data for p, data in before.items())
    code, _, err = _eval_cli(monkeypatch, capsys, f"ckpt={run}", f"output={run}")
    assert code == 2 and "is a directory" in err
    other = tmp_path / "notes.json"
    other.write_text("{}")
    code, _, _ = _eval_cli(monkeypatch, capsys, f"ckpt={run}", f"output={other}", "overwrite=true")
    assert code == 0 and json.loads(other.read_text())["split"] == "val"
    assert not list(tmp_path.glob(".*.tmp"))
    code, _, _ = _eval_cli(monkeypatch, capsys, f"ckpt={run}", f"output={other}")  # its own earlier result
    assert code == 0
