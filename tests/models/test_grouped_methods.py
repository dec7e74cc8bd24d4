"""``arch=grouped`` under every weighting method and mode, with relations, bf16 autocast and ``data=multi``."""

from __future__ import annotations

import pytest
from data.data_layouts import write_folder
from scale_helpers import compose_config
from weighting.conftest import METHOD_MODES

from mtl_cli.engine.run import train_run

pytestmark = pytest.mark.slow

GROUPED = ["arch=grouped", "arch.branch_at=1", "arch.groups=[[cls,depth],[seg]]", "task=cls+seg+depth"]
SHORT = ["trainer.epochs=1", "trainer.max_steps=2", "trainer.vis_images=0"]


@pytest.mark.parametrize(
    "name, options", METHOD_MODES, ids=[f"{n}-{o.get('grad_on', 'loss')}" for n, o in METHOD_MODES]
)
def test_every_weighting_method_trains_the_grouped_model(tmp_path, name, options):
    overrides = [f"weighting.{k}={v}" for k, v in options.items()]
    summary = train_run(compose_config(*GROUPED, f"weighting={name}", *overrides, *SHORT), tmp_path)
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert set(summary["metrics"]) == {"cls", "seg", "depth"}


def test_grouped_with_learned_relations_and_bf16(tmp_path):
    cfg = compose_config(*GROUPED, *SHORT, "relation=learned", "relation.every_n_steps=1", "trainer.precision=bf16")
    summary = train_run(cfg, tmp_path)
    assert summary["status"] == "completed" and summary["relations"]["measurements"] == 2


def test_grouped_on_multi_datasets(tmp_path):
    a = write_folder(tmp_path / "a", n_train=6, n_val=2, seed=0)
    b = write_folder(tmp_path / "b", n_train=4, n_val=2, seed=1)
    sources = [
        f"+data.sources.cls={{name: folder, root: {a}, tasks: {{cls: {{kind: cls, num_classes: 3}}}}}}",
        f"+data.sources.depth={{name: folder, root: {b}, tasks: {{depth: {{kind: depth}}}}}}",
        f"+data.sources.seg={{name: folder, root: {b}, tasks: {{seg: {{kind: seg, num_classes: 4, ignore_index: 255}}}}}}",
    ]
    cfg = compose_config("data=multi", *sources, *GROUPED, *SHORT, "trainer.batch_size=2", base=[])
    summary = train_run(cfg, tmp_path / "run")
    assert summary["status"] == "completed" and set(summary["metrics"]) == {"cls", "seg", "depth"}
