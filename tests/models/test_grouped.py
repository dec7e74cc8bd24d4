"""``arch=grouped``: the parameter split against ``shared_layers``, training, and bad groupings."""

from __future__ import annotations

import pytest
import torch
from models.helpers import batch, losses, model

from mtl_cli.errors import UserError

TASKS = ("cls", "seg", "depth")


@pytest.mark.parametrize("branch_at", [None, "1"])
def test_one_group_per_task_is_shared_layers(branch_at):
    grouped = model("grouped", TASKS, branch_at=branch_at, groups=[["cls"], ["seg"], ["depth"]])
    assert grouped.parameter_counts() == model("shared_layers", TASKS, branch_at=branch_at).parameter_counts()


def test_one_group_is_the_whole_backbone_shared():
    grouped = model("grouped", TASKS, branch_at="1", groups=[list(TASKS)]).parameter_counts()
    shared = model("shared_layers", TASKS).parameter_counts()
    assert grouped["total"] == shared["total"] and all(grouped[t] == shared[t] for t in TASKS)
    assert grouped["shared"] + grouped["group:cls+seg+depth"] == shared["shared"]  # the branch after stage 1
    assert model("grouped", TASKS, groups=[list(TASKS)]).parameter_counts() == shared  # branch_at: the end


def test_a_group_of_two_shares_its_branch_and_owns_only_heads():
    net = model("grouped", TASKS, branch_at="1", groups=[["cls", "depth"], ["seg"]])
    separate = model("shared_layers", TASKS, branch_at="1").parameter_counts()
    counts = net.parameter_counts()
    tail = sum(p.numel() for p in net.branches["cls+depth"].parameters())
    assert counts["seg"] == separate["seg"]  # alone in its group: its branch is its own
    assert counts["cls"] == separate["cls"] - tail and counts["depth"] == separate["depth"] - tail
    assert counts["shared"] == separate["shared"] and counts["group:cls+depth"] == tail
    assert counts["total"] == counts["shared"] + tail + sum(counts[t] for t in TASKS)
    assert counts["total"] == separate["total"] - tail  # two groups: one branch fewer than three
    trunk = {id(p) for p in net.trunk.parameters()}
    assert {id(p) for p in net.shared_parameters()} == trunk


def test_trains_and_every_task_reaches_the_shared_features():
    torch.manual_seed(0)
    net = model("grouped", TASKS, branch_at="1", groups=[["seg", "cls"], ["depth"]])
    data = batch(TASKS)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for _ in range(2):
        optimizer.zero_grad()
        preds, features = net(data["image"], return_features=True)
        assert list(preds) == list(TASKS)  # the run's task order, whatever the groups' order
        task_losses = losses(net, preds, data)
        for i in range(len(TASKS)):
            (grad,) = torch.autograd.grad(task_losses[i], features, retain_graph=True)
            assert grad.abs().sum() > 0
            torch.autograd.grad(task_losses[i], net.shared_parameters(), retain_graph=True)  # reaches all of them
        task_losses.sum().backward()
        optimizer.step()
    assert all(not torch.equal(p, before[n]) for n, p in net.named_parameters())


@pytest.mark.parametrize(
    "groups, message",
    [
        ([["cls", "seg"]], "no group holds depth"),
        ([["cls", "seg"], ["seg", "depth"]], "task 'seg' is in more than one group"),
        ([["cls", "seg", "depth", "edges"]], "'edges' is not a task of this run"),
        ([["cls"], [], ["seg", "depth"]], "is not a non-empty list of tasks"),
        ("cls", "'auto' and 'from:<run dir>' are resolved by mtl-train"),
        (None, "give a list of task groups"),
    ],
)
def test_bad_groupings_are_one_line_errors(groups, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("[", r"\[")) as info:
        model("grouped", TASKS, groups=groups)
    assert "\n" not in str(info.value)


def test_decoder_is_not_a_branch_point_of_grouped():
    with pytest.raises(UserError, match="no such stage"):
        model("grouped", TASKS, branch_at="decoder", groups=[list(TASKS)])
