"""Checkpoints: atomic writes, weights-only loading, clear errors for bad files."""

from __future__ import annotations

import pytest
import torch

from mtl_cli.engine.checkpoint import load_checkpoint, save_checkpoint
from mtl_cli.errors import UserError


def test_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "train_state": {"epoch": 2, "best": None}, "config": "a: 1\n"}
    save_checkpoint(tmp_path / "last.pt", state)
    loaded = load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0))
    assert loaded["train_state"] == {"epoch": 2, "best": None}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


def test_failed_save_keeps_previous_file(tmp_path):
    save_checkpoint(tmp_path / "last.pt", {"v": torch.tensor(1)})

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(tmp_path / "last.pt", {"v": Unsaveable()})
    assert load_checkpoint(tmp_path / "last.pt")["v"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_file_is_user_error(tmp_path):
    save_checkpoint(tmp_path / "last.pt", {"v": torch.zeros(1000)})
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": "mtl_cli-checkpoint", "model": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="refused"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_foreign_checkpoint_is_user_error(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not an mtl_cli checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
