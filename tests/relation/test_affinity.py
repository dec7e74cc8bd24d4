"""Affinity measurement: hand-computed lookahead and cosine, self-affinity, no side effects, averaging."""

from __future__ import annotations

import pytest
import torch
from models.helpers import batch, losses, model
from torch import nn

from mtl_cli.models.base import MultiTaskModel
from mtl_cli.relation.affinity import AffinityTracker


class Line(MultiTaskModel):
    """One shared weight w; predictions a = w s, b = 2 w s, c = w s for s = sum(images)."""

    per_task_modules = ()

    def __init__(self) -> None:
        super().__init__()
        self.task_names = ["a", "b", "c"]
        self.w = nn.Parameter(torch.tensor([0.5]))

    def forward(self, images, return_features=False):
        s = images.sum()
        return {"a": self.w * s, "b": 2 * self.w * s, "c": self.w * s}


def line_losses(preds):
    """L_a = (a - 1)^2, L_b = (b - 3)^2, L_c = c^2."""
    return torch.cat([(preds["a"] - 1) ** 2, (preds["b"] - 3) ** 2, preds["c"] ** 2])


def test_lookahead_and_cosine_match_hand_computed_values():
    net = Line()
    tracker = AffinityTracker(net, every_n_steps=1, lr=0.1)
    images = torch.ones(1, 1)
    cosine, lookahead = tracker.measure(images, line_losses(net(images)), line_losses)
    # At w = 0.5: L = (0.25, 4, 0.25), g = (-1, -8, 1). A step on a: w = 0.6; on b: 1.3; on c: 0.4.
    expected = torch.tensor(
        [
            [1 - 0.16 / 0.25, 1 - 3.24 / 4, 1 - 0.36 / 0.25],
            [1 - 0.09 / 0.25, 1 - 0.16 / 4, 1 - 1.69 / 0.25],
            [1 - 0.36 / 0.25, 1 - 4.84 / 4, 1 - 0.16 / 0.25],
        ]
    )
    torch.testing.assert_close(lookahead, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cosine, torch.tensor([[1.0, 1, -1], [1, 1, -1], [-1, -1, 1]]))
    assert net.w.item() == 0.5 and net.w.grad is None


def test_scaled_losses_give_the_same_affinity_and_overflow_is_skipped():
    net = Line()
    tracker = AffinityTracker(net, every_n_steps=1, lr=0.1)
    images = torch.ones(1, 1)
    plain = tracker.measure(images, line_losses(net(images)), line_losses)
    scale = torch.tensor(512.0)
    scaled = tracker.measure(images, line_losses(net(images)) * scale, line_losses, grad_scale=scale)
    torch.testing.assert_close(scaled, plain)
    assert tracker.measure(images, line_losses(net(images)) * float("inf"), line_losses) is None
    assert tracker.epoch_count == 2


def test_measuring_changes_nothing_and_self_affinity_is_one():
    torch.manual_seed(0)
    names = ("cls", "seg", "depth")
    net = model("shared_layers", names, branch_at="layer1")
    data = batch(names)
    tracker = AffinityTracker(net, every_n_steps=5, lr=0.01)
    task_losses = losses(net, net(data["image"]), data)
    before = {k: v.clone() for k, v in net.state_dict().items()}  # after the step's own forward
    cosine, lookahead = tracker.measure(data["image"], task_losses, lambda preds: losses(net, preds, data))
    torch.testing.assert_close(cosine.diagonal(), torch.ones(3))
    assert ((cosine >= -1 - 1e-6) & (cosine <= 1 + 1e-6)).all()
    torch.testing.assert_close(cosine, cosine.T)
    assert (lookahead.diagonal() > 0).all()  # a small step on a task lowers its own loss
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # parameters and BatchNorm statistics
    assert all(p.grad is None for p in net.parameters())
    task_losses.sum().backward()  # the graph is still usable for the real backward


def test_due_every_n_steps():
    tracker = AffinityTracker(Line(), every_n_steps=3, lr=0.1)
    assert [s for s in range(10) if tracker.due(s)] == [0, 3, 6, 9]


def test_epoch_and_run_means():
    net = Line()
    tracker = AffinityTracker(net, every_n_steps=1, lr=0.1)
    assert tracker.epoch_means() is None
    measured = []
    for scales in [(1.0, 2.0), (3.0,)]:
        first = []
        for s in scales:
            images = torch.full((1, 1), s)
            first.append(tracker.measure(images, line_losses(net(images)), line_losses)[1])
        cosine, lookahead = tracker.epoch_means()
        torch.testing.assert_close(lookahead, torch.stack(first).mean(dim=0))
        measured += first
    assert tracker.epoch_means() is None
    torch.testing.assert_close(tracker.run_means()[1], torch.stack(measured).mean(dim=0))
    assert tracker.run_count == 3


@pytest.mark.parametrize("arch", ["cross_stitch", "mtan", "mmoe", "shared_weights"])
def test_every_architecture_can_be_measured(arch):
    names = ("cls", "seg")
    net = model(arch, names)
    data = batch(names)
    tracker = AffinityTracker(net, every_n_steps=1, lr=0.01)
    cosine, lookahead = tracker.measure(
        data["image"], losses(net, net(data["image"]), data), lambda preds: losses(net, preds, data)
    )
    torch.testing.assert_close(cosine.diagonal(), torch.ones(2))
    assert torch.isfinite(lookahead).all()
