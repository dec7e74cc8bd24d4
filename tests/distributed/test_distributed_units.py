"""The distributed helpers that need no second process: sharding, Hydra overrides, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mtl_cli.engine import distributed
from mtl_cli.engine.distributed import RankInfo, ShardSampler, hydra_overrides, train_sampler
from mtl_cli.errors import UserError


def _batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices) - size + 1, size)]


def test_two_shards_of_batch_b_form_the_single_process_batch_of_2b():
    data = list(range(37))
    one = train_sampler(data, seed=3, info=RankInfo())
    ranks = [train_sampler(data, seed=3, info=RankInfo(rank=r, world_size=2)) for r in range(2)]
    for epoch in (0, 1):
        for sampler in (one, *ranks):
            sampler.set_epoch(epoch)
        single = _batches(list(one), 8)
        per_rank = [_batches(list(s), 4) for s in ranks]
        assert len(single) == len(per_rank[0]) == len(per_rank[1]) == 4
        for step, batch in enumerate(single):
            assert sorted(per_rank[0][step] + per_rank[1][step]) == sorted(batch)
    one.set_epoch(0)
    first = list(one)
    one.set_epoch(1)
    assert list(one) != first and sorted(one) == sorted(first)  # reshuffled every epoch


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shard_sampler_covers_every_item_once_without_padding(world):
    shards = [list(ShardSampler(11, RankInfo(rank=r, world_size=world))) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    assert [len(ShardSampler(11, RankInfo(rank=r, world_size=world))) for r in range(world)] == [len(s) for s in shards]


def test_rank_zero_keeps_its_hydra_arguments():
    argv = ["task=cls", "hydra.run.dir=mine"]
    assert hydra_overrides(argv, RankInfo(rank=0, world_size=2)) == argv


def test_other_ranks_write_nothing_of_their_own():
    out = hydra_overrides(["task=cls", "hydra.run.dir=mine", "hydra.output_subdir=x"], RankInfo(rank=1, world_size=2))
    assert "task=cls" in out and "hydra.run.dir=mine" not in out and "hydra.output_subdir=x" not in out
    scratch = Path(next(a for a in out if a.startswith("hydra.run.dir=")).split("=", 1)[1].strip("'"))
    assert scratch.is_dir() and not any(scratch.iterdir())
    assert {"hydra.output_subdir=null", "hydra.job_logging.root.handlers=[console]"} <= set(out)


def test_failing_rank_says_which_it_is(monkeypatch, tmp_path, capsys):
    error_file = tmp_path / "error.json"
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    with pytest.raises(SystemExit) as stop:
        with distributed.name_failing_rank("mtl-train"):
            raise UserError("bad data in shard 3; regenerate it")
    assert stop.value.code == 2
    assert capsys.readouterr().err == "mtl-train: error: rank 1: bad data in shard 3; regenerate it\n"
    assert "bad data in shard 3" in json.loads(error_file.read_text())["message"]["message"]
    with pytest.raises(SystemExit) as crash:
        with distributed.name_failing_rank("mtl-train"):
            raise RuntimeError("boom\nsecond line")
    assert crash.value.code == 1
    assert capsys.readouterr().err == "mtl-train: error: rank 1: RuntimeError: boom second line\n"


def test_single_process_errors_pass_through(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UserError, match="^plain$"):
        with distributed.name_failing_rank("mtl-train"):
            raise UserError("plain")


def test_setup_errors_name_the_fix(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    with pytest.raises(UserError, match=r"torchrun --nproc_per_node=2 -m mtl_cli.train"):
        distributed.setup("cpu", "auto", 2)
    assert distributed.setup("cpu", "auto", 1) == (RankInfo(), torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(UserError, match=r"trainer.devices=2 but torchrun started 4 process\(es\) per node"):
        distributed.setup("cpu", "auto", 2)
    with pytest.raises(UserError, match="trainer.backend=nccl needs CUDA"):
        distributed.resolve_backend("nccl", torch.device("cpu"))
    assert distributed.resolve_backend("auto", torch.device("cpu")) == "gloo"
    assert distributed.resolve_backend("auto", torch.device("cuda", 0)) == "nccl"


def test_sync_batchnorm_on_cpu_is_refused_inside_a_process_group(monkeypatch):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert distributed.sync_batchnorm(model, "sync", torch.device("cpu")) is model  # one process: nothing to sync
    monkeypatch.setattr(distributed, "is_active", lambda: True)
    with pytest.raises(UserError, match="batch_norm=sync needs CUDA"):
        distributed.sync_batchnorm(model, "sync", torch.device("cpu"))


def test_freeze_batchnorm_keeps_running_statistics():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    distributed.freeze_batchnorm_(model)
    before = model[1].running_mean.clone()
    model(torch.randn(2, 3, 8, 8))
    assert model[0].training and not model[1].training
    assert torch.equal(model[1].running_mean, before)


def test_single_process_collectives_are_identities():
    tensor = torch.tensor([1.0, 3.0])
    assert distributed.all_reduce_mean_(tensor) is tensor and tensor.tolist() == [1.0, 3.0]
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    layer = nn.Linear(2, 1)
    layer(torch.ones(1, 2)).sum().backward()
    grad = layer.weight.grad.clone()
    distributed.GradientAverager(layer.parameters())()
    assert torch.equal(layer.weight.grad, grad)
