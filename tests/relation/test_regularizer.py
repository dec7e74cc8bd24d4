"""The relation regulariser: hand-computed gradient, closed form = autograd, what it couples."""

from __future__ import annotations

import pytest
import torch
from models.helpers import model
from torch import nn

from mtl_cli.errors import UserError
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.relation.regularizer import RelationRegularizer


class Toy(MultiTaskModel):
    """Three tasks; ``w`` has the same shape in a and b only, ``v`` in all three."""

    per_task_modules = ("blocks",)

    def __init__(self, values: dict[str, dict[str, list[float]]]) -> None:
        super().__init__()
        self.task_names = list(values)
        self.blocks = nn.ModuleDict(
            {t: nn.ParameterDict({n: nn.Parameter(torch.tensor(v)) for n, v in ps.items()}) for t, ps in values.items()}
        )

    def forward(self, images, return_features=False):  # pragma: no cover - not used
        raise NotImplementedError


def toy() -> Toy:
    return Toy(
        {
            "a": {"w": [1.0, 2.0], "v": [0.0]},
            "b": {"w": [0.0, 4.0], "v": [3.0]},
            "c": {"w": [1.0, 1.0, 1.0], "v": [1.0]},
        }
    )


R = [[0.0, 1.0, 2.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]


def test_penalty_and_gradient_match_hand_computed_values():
    net = toy()
    reg = RelationRegularizer(net, R, strength=0.1)
    # w: a-b only (c's w has another shape): (R_ab + R_ba) * ||(1,-2)||^2 = 1.5 * 5
    # v: a-b 1.5 * 9, a-c (R_ac=2) * 1, b-c 0
    assert reg.penalty().item() == pytest.approx(0.1 * (1.5 * 5 + 1.5 * 9 + 2 * 1))
    reg.add_gradient()
    blocks = net.blocks
    # d/d theta_i = 2 lambda sum_j (R_ij + R_ji)(theta_i - theta_j)
    torch.testing.assert_close(blocks["a"]["w"].grad, torch.tensor([0.3, -0.6]))
    torch.testing.assert_close(blocks["b"]["w"].grad, torch.tensor([-0.3, 0.6]))
    assert blocks["c"]["w"].grad is None  # nothing of its shape to couple with
    torch.testing.assert_close(blocks["a"]["v"].grad, torch.tensor([0.2 * (1.5 * -3 + 2 * -1)]))
    torch.testing.assert_close(blocks["b"]["v"].grad, torch.tensor([0.2 * (1.5 * 3)]))
    torch.testing.assert_close(blocks["c"]["v"].grad, torch.tensor([0.2 * (2 * 1)]))


def test_closed_form_gradient_equals_autograd_and_adds_to_existing_grads():
    torch.manual_seed(0)
    net = model("shared_layers", ("seg", "depth", "normals"), branch_at="layer1")
    matrix = torch.rand(3, 3).tolist()
    reg = RelationRegularizer(net, matrix, strength=0.3)
    params = [p for t in net.task_names for p in net.task_parameters(t)]
    expected = torch.autograd.grad(reg.penalty(), params, allow_unused=True)
    for p in params:
        p.grad = torch.ones_like(p)
    reg.add_gradient()
    coupled = 0
    for p, g in zip(params, expected):
        if g is None:
            assert torch.equal(p.grad, torch.ones_like(p))  # e.g. the output layers: shapes differ
        else:
            torch.testing.assert_close(p.grad, 1 + g, rtol=1e-5, atol=1e-6)
            coupled += 1
    assert coupled > len(params) // 2  # the copied stage and the decoders are coupled


def test_gradient_carries_the_fp16_loss_scale():
    plain, scaled = toy(), toy()
    RelationRegularizer(plain, R, strength=0.1).add_gradient()
    RelationRegularizer(scaled, R, strength=0.1).add_gradient(torch.tensor(1024.0))
    torch.testing.assert_close(scaled.blocks["a"]["v"].grad, 1024 * plain.blocks["a"]["v"].grad)


def test_set_matrix_changes_the_coupling():
    net = toy()
    reg = RelationRegularizer(net, R, strength=1.0)
    reg.set_matrix(torch.zeros(3, 3))
    assert reg.penalty().item() == 0.0
    reg.add_gradient()
    assert torch.equal(net.blocks["a"]["w"].grad, torch.zeros(2))


def test_nothing_to_couple_is_a_user_error():
    with pytest.raises(UserError, match="no task-specific parameters of the same shape"):
        RelationRegularizer(model("shared_weights", ("cls", "seg")), [[0, 1], [1, 0]], strength=0.1)


def test_the_default_architecture_couples_the_per_task_decoders_of_cls_and_seg():
    net = model("shared_layers", ("cls", "seg"))  # the default: the whole backbone shared
    reg = RelationRegularizer(net, [[0, 1], [1, 0]], strength=0.1)
    names = {
        name
        for name, param in net.task_named_parameters("cls").items()
        if any(param is p for m in reg.blocks for _, p in m)
    }
    assert names and all(name.startswith("heads.decoder.") for name in names)
    assert reg.value() == pytest.approx(reg.penalty().item()) and reg.value() > 0
