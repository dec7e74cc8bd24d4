"""``det`` trains with every architecture and with loss- and gradient-level weighting methods."""

from __future__ import annotations

import functools

import pytest
import torch
from omegaconf import OmegaConf
from weighting.conftest import Setup, compose_config, train_step

from mtl_cli.data import MultiTaskCollate
from mtl_cli.data.shapes import ShapesDataset
from mtl_cli.engine.build import build_components
from mtl_cli.models import build_model
from mtl_cli.tasks import build_task
from mtl_cli.weighting import build_weighting

INFO = {"det": {"num_classes": 4}, "seg": {"num_classes": 5}}
# every architecture; shared_layers at each branch point of small_cnn (stages 0..3, then the decoder)
ARCHS = [("shared_weights", None), ("cross_stitch", None), ("mtan", None), ("mmoe", None)] + [
    ("shared_layers", b) for b in (None, "0", "1", "2", "3", "decoder")
]


def _tasks(names):
    return [build_task(n, {"kind": n}, INFO[n]) for n in names]


@functools.cache
def _batch(names: tuple[str, ...]) -> dict:
    data = ShapesDataset(num=4, image_size=32, seed=0, tasks=list(names))
    return MultiTaskCollate(_tasks(names))([data[i] for i in range(4)])


@pytest.mark.parametrize("names", [("det",), ("seg", "det")], ids="+".join)
@pytest.mark.parametrize("arch, branch_at", ARCHS, ids=[f"{a}-{b}" if b else a for a, b in ARCHS])
def test_one_training_step_per_architecture(arch, branch_at, names):
    torch.manual_seed(0)
    tasks = _tasks(names)
    cfg = OmegaConf.create(
        {
            "arch": {"name": arch, "branch_at": branch_at, "num_experts": 4, "stitch_init": 0.9},
            "backbone": {"name": "small_cnn", "pretrained": None, "width": 8},
        }
    )
    net = build_model(cfg, tasks)
    data = _batch(names)
    preds, features = net(data["image"], return_features=True)
    assert preds["det"].shape == (4, 4 + 4, 8, 8)  # stride-4 grid of the 32 px input
    losses = torch.stack([t.loss(preds[t.name], data[t.name]) for t in tasks])
    assert losses.shape == (len(names),) and torch.isfinite(losses).all()
    (grad,) = torch.autograd.grad(losses[-1], features, retain_graph=True)  # det reads the shared features
    assert grad.abs().sum() > 0
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    losses.sum().backward()
    optimizer.step()
    assert all(not torch.equal(p, before[n]) for n, p in net.named_parameters() if p.grad is not None)
    assert sum(p.grad is None for p in net.parameters()) == 0


@pytest.fixture(scope="module")
def det_setup() -> Setup:
    parts = build_components(compose_config("task=seg+det"))
    batch = next(iter(parts.train_loader))
    assert [t.name for t in parts.tasks] == ["seg", "det"]
    return Setup(parts.model, parts.tasks, batch["image"], batch)


METHODS = [
    ("ew", {}),
    ("uw", {}),
    ("dwa", {}),
    ("mgda", {"grad_on": "params"}),
    ("mgda", {"grad_on": "features"}),
    ("pcgrad", {"grad_on": "params"}),
    ("pcgrad", {"grad_on": "features"}),
    ("cagrad", {"grad_on": "features"}),
]


@pytest.mark.parametrize("name, options", METHODS, ids=[f"{n}-{o.get('grad_on', 'loss')}" for n, o in METHODS])
def test_weighting_methods_take_det_loss_as_one_scalar(det_setup, name, options):
    model = det_setup.fresh_model()
    method = build_weighting(name, ["seg", "det"], [1.0, 1.0], {"name": name, **options})
    weights = train_step(method, model, det_setup)
    assert weights.shape == (2,) and torch.isfinite(weights).all()
    shared = model.shared_parameters()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in shared)
    det_head = model.task_parameters("det")
    assert det_head and all(p.grad is not None and p.grad.abs().sum() > 0 for p in det_head)
