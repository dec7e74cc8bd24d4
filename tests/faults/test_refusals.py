"""Issue 12: bad settings are refused with one line and exit 2, before any run directory is claimed."""

from __future__ import annotations

import pytest
from faults_helpers import leftovers, run_train


@pytest.mark.parametrize(
    "args, message",
    [
        (["optim.lr=inf"], "optim.lr=inf: the learning rate must be a finite number > 0"),  # 12.10
        (["optim.weight_decay=nan"], "optim.weight_decay=nan"),
        (["arch.stitch_init=nan"], "arch.stitch_init=nan: must be a finite number"),
        (["optim.momentum=1.5"], "optim.momentum=1.5"),
        (["data.image_size=3"], "data.image_size=3: must be between 8 and 2048"),  # 12.3
        (["data.image_size=1000000"], "data.image_size=1000000: must be between 8 and 2048"),
        (["weighting=ew", "weighting.alpha=1"], "weighting=ew has no option 'alpha'; its options: none"),  # 12.12
        (["weighting=cagrad", "weighting.beta=1"], "its options: grad_on, alpha, rescale"),
        (["trainer.epochs=0", "hydra.run.dir=run"], "trainer.epochs=0"),  # 12.14
        (["data.cache_dir=notes.txt"], "data.cache_dir=notes.txt is a file"),  # 12.8
        (["hydra.run.dir=notes.txt"], "hydra.run.dir=notes.txt: a file is in the way"),  # 12.8
        (["hydra.run.dir=notes.txt/run"], "a file is in the way"),
    ],
)
def test_refused_in_one_line_leaving_nothing(tmp_path, monkeypatch, args, message):
    (tmp_path / "notes.txt").write_text("mine\n")
    outcome = run_train(monkeypatch, tmp_path, *args)
    assert outcome.code == 2 and len(outcome.lines) == 1, outcome
    assert outcome.lines[0].startswith("mtl-train: error: ") and message in outcome.lines[0], outcome.lines
    assert leftovers(tmp_path, keep={"notes.txt"}) == []  # no outputs/, no .hydra/, no train.log
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_corrected_command_reuses_the_same_run_dir(tmp_path, monkeypatch):
    """12.14: after a refused command, the corrected one may use the same hydra.run.dir."""
    assert run_train(monkeypatch, tmp_path, "trainer.epochs=0", "hydra.run.dir=run").code == 2
    assert run_train(monkeypatch, tmp_path, "trainer.epochs=1", "hydra.run.dir=run").code is None


def test_generated_data_too_big_for_memory_is_refused_with_the_estimate(tmp_path, monkeypatch):
    """12.2: data.num_train=1e9 used to grow until the kernel killed it; now one line before anything starts."""
    outcome = run_train(monkeypatch, tmp_path, "data.num_train=1000000000")
    assert outcome.code == 2 and len(outcome.lines) == 1, outcome
    assert "data=shapes: 1000000500 samples of this size need about 30" in outcome.lines[0]
    assert "GiB of memory, but only" in outcome.lines[0] and leftovers(tmp_path) == []


def test_memory_estimate_scales_with_the_data():
    from omegaconf import OmegaConf

    from mtl_cli.data.memory import check_generated_data_fits
    from mtl_cli.errors import UserError

    data = OmegaConf.create({"name": "multimnist", "num_train": 1000, "num_val": 0, "image_size": 28})
    check_generated_data_fits(data, available=1000 * (16 + 12 * 28 * 28))
    with pytest.raises(UserError, match=r"data=multimnist: 1001 samples .* need about 0\.0 GiB"):
        check_generated_data_fits(OmegaConf.merge(data, {"num_val": 1}), available=1000 * (16 + 12 * 28 * 28))
    check_generated_data_fits(OmegaConf.merge(data, {"name": "folder"}), available=0)  # real data: not generated
