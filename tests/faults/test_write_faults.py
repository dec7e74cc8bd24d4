"""Issue 12.6: a checkpoint write that fails (disk full, permission denied) keeps the last complete one."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from mtl_cli.engine import checkpoint as checkpoint_module
from mtl_cli.engine.callbacks.checkpoints import Checkpoints
from mtl_cli.engine.checkpoint import load_checkpoint, save_checkpoint
from mtl_cli.errors import UserError


def _failing_save(error: BaseException):
    """A ``torch.save`` that writes part of the file, then fails like a full disk would."""

    def save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04partial")
        raise error

    return save


@pytest.mark.parametrize(
    "error, message",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk full: could not write {path}"),
        (OSError(errno.EACCES, "Permission denied"), "permission denied: could not write {path}"),
        (
            RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4480 vs 4374"),
            "disk full: could not write {path}",
        ),
    ],
)
def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, error, message):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}, "epoch": 1})
    before = path.read_bytes()
    monkeypatch.setattr(checkpoint_module.torch, "save", _failing_save(error))
    with pytest.raises(UserError) as caught:
        save_checkpoint(path, {"model": {"w": torch.zeros(3)}, "epoch": 2})
    text = str(caught.value)
    assert "\n" not in text and message.format(path=path) in text
    assert f"the last complete checkpoint {path} is intact" in text
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no .tmp left


def test_failed_first_save_names_no_missing_file(tmp_path, monkeypatch):
    """12.10's rule for this message: a checkpoint that does not exist is not called intact."""
    path = tmp_path / "best.pt"
    monkeypatch.setattr(checkpoint_module.torch, "save", _failing_save(OSError(errno.ENOSPC, "full")))
    with pytest.raises(UserError, match="no earlier checkpoint was written") as caught:
        save_checkpoint(path, {"epoch": 1})
    assert "is intact" not in str(caught.value) and list(tmp_path.iterdir()) == []


def test_other_runtime_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_module.torch, "save", _failing_save(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        save_checkpoint(tmp_path / "last.pt", {})
    assert list(tmp_path.iterdir()) == []


def test_partial_file_of_a_killed_save_is_removed_when_training_starts(tmp_path):
    folder = tmp_path / "checkpoints"
    save_checkpoint(folder / "last.pt", {"epoch": 1})
    partial = folder / ".last.pt.k2j3h4.tmp"  # what a SIGKILL during atomic_write leaves
    partial.write_bytes(b"PK")
    Checkpoints(folder).on_fit_start(trainer=None)  # type: ignore[arg-type]
    assert not partial.exists() and (folder / "last.pt").is_file()
    assert os.listdir(folder) == ["last.pt"]
