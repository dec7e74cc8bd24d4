"""``data=multi``: every task from its own dataset; joined batches, sampling, and a two-folder run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import read_summary, run_cli
from data_layouts import write_folder
from omegaconf import OmegaConf

from mtl_cli.data.multi import MultiTrainLoader, join_batches, own_rows, source_configs
from mtl_cli.errors import UserError


def _batch(task: str, rows: int, size: int = 8, fill: float = 0.0) -> dict:
    return {"image": torch.full((rows, 3, size, size), fill), task: torch.arange(rows) + 100 * len(task)}


def test_join_batches_keeps_each_tasks_rows_apart():
    joined = join_batches({"cls": _batch("cls", 2, fill=1.0), "seg": _batch("seg", 3, fill=2.0)})
    assert joined["image"].shape[0] == 5
    assert joined["slices"] == {"cls": slice(0, 2), "seg": slice(2, 5)}
    preds = {"cls": torch.arange(5), "seg": torch.arange(5) * 10}
    rows = own_rows(preds, joined["slices"])
    assert rows["cls"].tolist() == [0, 1] and rows["seg"].tolist() == [20, 30, 40]
    assert torch.equal(joined["image"][2:], torch.full((3, 3, 8, 8), 2.0))


def test_images_of_different_sizes_are_a_clear_error():
    with pytest.raises(UserError, match="the datasets' images differ in size"):
        join_batches({"cls": _batch("cls", 2, size=8), "seg": _batch("seg", 2, size=16)})


def test_round_robin_to_the_longest_restarts_shorter_loaders():
    short = torch.utils.data.DataLoader(list(range(2)), batch_size=1, shuffle=True, generator=torch.Generator())
    long = torch.utils.data.DataLoader(list(range(5)), batch_size=1, shuffle=True, generator=torch.Generator())

    def as_batch(task):
        return lambda items: {"image": torch.zeros(len(items), 3, 4, 4), task: torch.tensor(items)}

    short.collate_fn, long.collate_fn = as_batch("cls"), as_batch("seg")
    loader = MultiTrainLoader({"cls": short, "seg": long})
    assert len(loader) == 5
    loader.generator.manual_seed(3)
    first = [(int(b["cls"]), int(b["seg"])) for b in loader]
    assert sorted(s for _, s in first) == list(range(5))  # one pass over the longest
    assert sorted(c for c, _ in first[:2]) == [0, 1] and sorted(c for c, _ in first[2:4]) == [0, 1]
    loader.generator.manual_seed(3)
    assert [(int(b["cls"]), int(b["seg"])) for b in loader] == first  # the epoch's seed fixes its order


def test_every_task_needs_a_source_that_labels_it():
    data = OmegaConf.create(
        {
            "name": "multi",
            "sampling": "longest",
            "image_size": 8,
            "tasks": {},
            "sources": {"cls": {"name": "folder", "tasks": {"seg": {}}}},
        }
    )
    with pytest.raises(UserError, match="data=multi has no dataset for task\\(s\\) seg; data.sources provides: cls"):
        source_configs(data, ["cls", "seg"])
    with pytest.raises(UserError, match="data.sources.cls \\(data=folder\\) has no labels for task cls"):
        source_configs(data, ["cls"])
    data.sampling = "proportional"
    with pytest.raises(UserError, match="data.sampling=proportional is not known"):
        source_configs(data, ["cls"])


def _sources(tmp_path: Path) -> list[str]:
    a = write_folder(tmp_path / "a", n_train=6, n_val=4, seed=0)
    b = write_folder(tmp_path / "b", n_train=10, n_val=3, seed=1)
    return [
        "data=multi",
        "task=cls+seg",
        f"+data.sources.cls={{name: folder, root: {a}, tasks: {{cls: {{kind: cls, num_classes: 3}}}}}}",
        f"+data.sources.seg={{name: folder, root: {b}, tasks: {{seg: {{kind: seg, num_classes: 4, ignore_index: 255}}}}}}",
        "trainer.batch_size=4",
        "backbone.width=8",
    ]


@pytest.mark.e2e
@pytest.mark.parametrize("weighting", ["ew", "pcgrad"])
def test_two_folder_datasets_train_and_report_both_tasks(tmp_path, weighting):
    run_cli("mtl_cli.train", [*_sources(tmp_path), "trainer.epochs=2", f"weighting={weighting}"], cwd=tmp_path)
    (summary_path,) = tmp_path.glob("outputs/*/*/summary.json")
    summary = read_summary(summary_path.parent)
    assert summary["status"] == "completed"
    assert summary["steps"] == 4  # seg's 10 images in batches of 4 (last dropped): 2 steps per epoch
    assert set(summary["metrics"]) == {"cls", "seg"}
    assert 0.0 <= summary["metrics"]["cls"]["accuracy"] <= 1.0 and "miou" in summary["metrics"]["seg"]
    if weighting == "ew":  # mtl-eval rebuilds both tasks' validation sets from the checkpoint's config
        run_cli("mtl_cli.eval", [f"ckpt={summary_path.parent}"], cwd=tmp_path)
        result = json.loads((summary_path.parent / "checkpoints" / "last.eval-val.json").read_text())
        assert result["metrics"] == summary["metrics"] and result["images"] == 4 + 3


@pytest.mark.e2e
def test_a_task_without_a_dataset_is_one_line(tmp_path):
    args = [arg for arg in _sources(tmp_path) if not arg.startswith("+data.sources.seg")]
    proc = run_cli("mtl_cli.train", args, cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1
    assert "data=multi has no dataset for task(s) seg; data.sources provides: cls" in lines[0]
