"""Rebuilding a model from a checkpoint: its own config, and one-line refusals of foreign files."""

from __future__ import annotations

import pytest
import torch
from inference.helpers import write_checkpoint

from mtl_cli.engine.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from mtl_cli.errors import UserError
from mtl_cli.inference.loading import load_trained_model


def test_model_is_rebuilt_with_the_checkpoints_weights(tmp_path):
    path = write_checkpoint(tmp_path / "model.pt", "mtan", tasks=("cls", "seg"))
    trained = load_trained_model(path)
    state = torch.load(path, weights_only=True)["model"]
    assert all(torch.equal(v, state[k]) for k, v in trained.model.state_dict().items())
    assert not trained.model.training
    assert trained.input_size == (16, 16)
    assert [t.name for t in trained.tasks] == ["cls", "seg"]


def test_checkpoint_of_another_tool_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, path)
    with pytest.raises(UserError, match="is not an mtl_cli checkpoint"):
        load_trained_model(path)


@pytest.mark.parametrize(
    "version, message",
    [
        (CHECKPOINT_VERSION + 1, "newer mtl_cli"),
        (0, "format version 0, which .* cannot read"),
        (None, "no format version"),
    ],
)
def test_checkpoint_of_another_format_version_is_refused(tmp_path, version, message):
    path = tmp_path / "model.pt"
    state = torch.load(write_checkpoint(path, tasks=("cls",)), weights_only=True)
    state = {**state, "format": CHECKPOINT_FORMAT, "version": version}
    if version is None:
        del state["version"]
    torch.save(state, path)
    with pytest.raises(UserError, match=message):
        load_trained_model(path)


def test_missing_checkpoint_names_the_setting(tmp_path):
    with pytest.raises(UserError, match="ckpt=.* does not exist"):
        load_trained_model(tmp_path / "nope.pt")
