"""Every sharing architecture: shapes, training steps, the shared/task split, defining properties."""

from __future__ import annotations

import csv

import pytest
import torch
from models.helpers import ARCHS, batch, losses, model
from torch import nn

from mtl_cli.errors import UserError
from mtl_cli.models.architectures.common import run_stages
from mtl_cli.models.architectures.cross_stitch import CrossStitchUnit

COMBOS = [("cls", "seg"), ("seg", "depth", "multilabel")]
SHAPES = {"cls": (4,), "seg": (5, 32, 32), "depth": (1, 32, 32), "multilabel": (4,)}


@pytest.mark.parametrize("combo", COMBOS, ids="+".join)
@pytest.mark.parametrize("arch", ARCHS)
def test_trains_a_few_steps_with_task_shapes(arch, combo):
    torch.manual_seed(0)
    net = model(arch, combo)
    data = batch(combo)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        preds, features = net(data["image"], return_features=True)
        assert {n: tuple(p.shape[1:]) for n, p in preds.items()} == {n: SHAPES[n] for n in combo}
        assert features.shape[0] == 4
        task_losses = losses(net, preds, data)
        assert torch.isfinite(task_losses).all()
        # Every task's prediction is computed from the shared features (feature-level methods)
        # and reaches every shared parameter (parameter-level methods need no allow_unused).
        for i, name in enumerate(combo):
            (grad,) = torch.autograd.grad(task_losses[i], features, retain_graph=True)
            assert grad.abs().sum() > 0, name
            torch.autograd.grad(task_losses[i], net.shared_parameters(), retain_graph=True)
        task_losses.sum().backward()
        optimizer.step()
    changed = [n for n, p in net.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_and_task_parameters_partition_the_model(arch):
    net = model(arch, ("cls", "seg", "depth"))
    shared = {id(p) for p in net.shared_parameters()}
    owned = [{id(p) for p in net.task_parameters(t)} for t in net.task_names]
    assert shared and all(owned)
    assert not any(shared & o for o in owned)
    assert not (owned[0] & owned[1]) and not (owned[1] & owned[2])
    counts = net.parameter_counts()
    assert counts["total"] == counts["shared"] + counts["cls"] + counts["seg"] + counts["depth"]
    assert counts["total"] == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("combo", COMBOS, ids="+".join)
def test_shared_layers_branching_at_the_very_end_is_shared_weights(combo):
    weights = model("shared_weights", combo).parameter_counts()
    assert model("shared_layers", combo, branch_at="decoder").parameter_counts() == weights
    assert model("shared_layers", combo, branch_at="3").parameter_counts() == weights  # small_cnn: 3 = decoder
    # Branching after the backbone instead gives every task its own decoder (image-level ones pool it).
    per_task = model("shared_layers", combo).parameter_counts()
    decoder = model("shared_weights", combo).decoder
    assert per_task["total"] - weights["total"] == (len(combo) - 1) * sum(p.numel() for p in decoder.parameters())


def test_shared_weights_keeps_only_output_projections_per_task():
    net = model("shared_weights", ("cls", "seg", "depth"))
    width = net.decoder.out_channels
    counts = net.parameter_counts()
    assert counts["seg"] == width * 5 + 5 and counts["depth"] == width * 1 + 1
    assert counts["cls"] == 2 * width * 4 + 4  # linear layer on the avg+max pooled decoder output
    # Every task reads the whole shared network, so no shared parameter is unused by a task.
    data = batch(("cls", "seg", "depth"))
    task_losses = losses(net, net(data["image"]), data)
    for i in range(3):
        grads = torch.autograd.grad(task_losses[i], net.shared_parameters(), retain_graph=True)
        assert all(g.abs().sum() > 0 for g in grads)


def test_cross_stitch_at_identity_is_independent_columns():
    torch.manual_seed(0)
    combo = ("cls", "seg", "depth")
    net = model("cross_stitch", combo, stitch_init=1.0)
    images = batch(combo)["image"]
    preds = net(images)
    for name in combo:
        alone = net.heads[name](run_stages(net.columns[name], images), (32, 32))
        torch.testing.assert_close(preds[name], alone, rtol=0, atol=1e-6)
    mixed = model("cross_stitch", combo, stitch_init=0.9)
    mixed.load_state_dict(net.state_dict() | {k: v for k, v in mixed.state_dict().items() if "stitches" in k})
    assert not torch.allclose(mixed(images)["seg"], preds["seg"])


def test_cross_stitch_unit_is_a_row_stochastic_mixing():
    unit = CrossStitchUnit(3, self_weight=0.7)
    alpha = unit.alpha.detach()
    torch.testing.assert_close(alpha.diagonal(), torch.full((3,), 0.7))
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(3))
    x = torch.randn(2, 3, 4, 5, 5)
    expected = torch.stack([sum(alpha[i, j] * x[:, j] for j in range(3)) for i in range(3)], dim=1)
    torch.testing.assert_close(unit(x), expected)


def test_cross_stitch_writes_its_mixing_matrices(tmp_path):
    net = model("cross_stitch", ("cls", "seg"))
    with torch.no_grad():
        net.stitches[1].alpha.copy_(torch.tensor([[0.25, 0.75], [0.5, 0.5]]))
    (path,) = net.save_records(tmp_path)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["stage", "task", "cls", "seg"]
    assert [r[:2] for r in rows[1:]] == [
        ["stem", "cls"],
        ["stem", "seg"],
        ["layer1", "cls"],
        ["layer1", "seg"],
        ["layer2", "cls"],
        ["layer2", "seg"],
    ]
    assert [float(v) for v in rows[3][2:]] == [0.25, 0.75] and [float(v) for v in rows[4][2:]] == [0.5, 0.5]


def test_mmoe_with_one_expert_is_shared_bottom_plus_that_expert():
    torch.manual_seed(0)
    net = model("mmoe", ("cls", "seg"), num_experts=1)
    images = batch(("cls", "seg"))["image"]
    preds = net(images)
    bottom = run_stages(net.bottom, images)
    features = [*bottom, *run_stages(net.experts[0], bottom[-1])]
    for name in ("cls", "seg"):
        torch.testing.assert_close(preds[name], net.heads[name](features, (32, 32)))


def test_mmoe_gates_are_per_task_distributions_over_experts():
    net = model("mmoe", ("cls", "seg"), num_experts=3, branch_at="stem")
    bottom = net.bottom(batch(("cls", "seg"))["image"])
    gates = net.gate_weights(bottom)
    assert set(gates) == {"cls", "seg"} and gates["cls"].shape == (4, 3)
    for g in gates.values():
        torch.testing.assert_close(g.sum(dim=1), torch.ones(4))
    assert not torch.allclose(gates["cls"], gates["seg"])


def test_mtan_with_open_masks_is_the_shared_backbone():
    """Masks forced to 1 (sigmoid of a large constant): every task reads the backbone output."""
    torch.manual_seed(0)
    net = model("mtan", ("cls", "seg"))
    with torch.no_grad():
        for attention in net.attention.values():
            for mask in attention.masks:
                bn = mask[-1][1]
                bn.weight.zero_()
                bn.bias.fill_(30.0)
    images = batch(("cls", "seg"))["image"]
    preds = net(images)
    outputs = run_stages([nn.Sequential(inner, last) for inner, last in zip(net.inner, net.last)], images)
    for name in ("cls", "seg"):
        torch.testing.assert_close(preds[name], net.heads[name](outputs, (32, 32)))


def test_mtan_refuses_a_backbone_with_single_block_stages():
    with pytest.raises(UserError, match="arch=mtan cannot use backbone=mobilenet_v3_small: its stage 'stem'"):
        model("mtan", ("cls", "seg"), backbone="mobilenet_v3_small")


@pytest.mark.parametrize(
    "arch, options, message",
    [
        ("shared_layers", {"branch_at": "layer9"}, "arch.branch_at=layer9: the network has no such stage"),
        (
            "shared_layers",
            {"branch_at": "7"},
            "there is no stage 7; the stages are 0=stem, 1=layer1, 2=layer2, 3=decoder",
        ),
        ("mmoe", {"branch_at": "layer2"}, "leaves no backbone stage for the mmoe experts; branch at an earlier stage"),
        ("mmoe", {"num_experts": 0}, "mmoe needs at least one expert"),
        ("cross_stitch", {"stitch_init": 1.5}, r"must be in \[0, 1\]"),
        ("mtan", {"branch_at": "layer1"}, "arch.branch_at=layer1 is not used by arch=mtan"),
        ("shared_weights", {"num_experts": 2}, r"not used by arch=shared_weights \(only by mmoe\)"),
        ("nope", {}, "unknown architecture 'nope'; known architectures: shared_weights, shared_layers"),
    ],
)
def test_bad_architecture_options_are_one_line_errors(arch, options, message):
    with pytest.raises(UserError, match=message) as info:
        model(arch, ("cls", "seg"), **options)
    assert "\n" not in str(info.value)
