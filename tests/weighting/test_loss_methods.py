"""Loss-based methods (and GradNorm) against their defining formulas, on hand-made losses."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mtl_cli.weighting import StepContext, build_weighting
from mtl_cli.weighting.dwa import dwa_weights
from mtl_cli.weighting.famo import famo_logit_grad, famo_loss
from mtl_cli.weighting.gradnorm import gradnorm_weight_grad


def make(name: str, k: int = 2, **options):
    return build_weighting(name, [f"t{i}" for i in range(k)], [1.0] * k, {"name": name, **options})


def losses_of(theta: torch.Tensor, values) -> torch.Tensor:
    """Losses whose gradient with respect to ``theta`` (k,) is the unit vector of each task times its value."""
    return torch.stack([v * theta[i] for i, v in enumerate(values)])


def step(method, losses: torch.Tensor, step: int = 0) -> torch.Tensor:
    return method.backward(losses, StepContext([], None, step, 1, task_losses=list(losses.unbind(0))))


def test_ew_and_fixed_use_the_static_weights():
    method = build_weighting("fixed", ["a", "b"], [0.25, 4.0], {"name": "fixed"})
    theta = torch.ones(2, requires_grad=True)
    weights = step(method, losses_of(theta, [1.0, 1.0]))
    assert weights.tolist() == [0.25, 4.0]
    assert theta.grad.tolist() == [0.25, 4.0]


def test_uw_weights_are_exp_minus_log_variance_and_its_gradient():
    method = make("uw")
    with torch.no_grad():
        method.log_vars.copy_(torch.tensor([0.5, -1.0]))
    theta = torch.ones(2, requires_grad=True)
    weights = step(method, losses_of(theta, [3.0, 2.0]))
    assert weights.tolist() == pytest.approx([math.exp(-0.5), math.exp(1.0)])
    assert theta.grad.tolist() == pytest.approx([3.0 * math.exp(-0.5), 2.0 * math.exp(1.0)])
    # d/ds [exp(-s) L + s] = 1 - exp(-s) L: the optimum is s = log L
    assert method.log_vars.grad.tolist() == pytest.approx([1 - math.exp(-0.5) * 3.0, 1 - math.exp(1.0) * 2.0])


def test_uw_learns_log_variance_equal_to_log_loss():
    method = make("uw")
    optimizer = torch.optim.SGD(method.parameters(), lr=0.5)
    fixed_losses = torch.tensor([4.0, 0.5])
    for i in range(100):
        optimizer.zero_grad()
        step(method, fixed_losses.clone(), i)
        optimizer.step()
    assert method.log_vars.tolist() == pytest.approx(fixed_losses.log().tolist(), abs=1e-3)


def test_uw_static_weights_multiply_the_whole_term_and_keep_their_ratio_at_the_optimum():
    method = build_weighting("uw", ["a", "b"], [2.0, 0.5], {"name": "uw"})
    with torch.no_grad():
        method.log_vars.copy_(torch.tensor([0.5, -1.0]))
    theta = torch.ones(2, requires_grad=True)
    weights = step(method, losses_of(theta, [3.0, 2.0]))
    assert weights.tolist() == pytest.approx([2.0 * math.exp(-0.5), 0.5 * math.exp(1.0)])
    assert theta.grad.tolist() == pytest.approx([2.0 * 3.0 * math.exp(-0.5), 0.5 * 2.0 * math.exp(1.0)])
    assert method.log_vars.grad.tolist() == pytest.approx(
        [2.0 * (1 - math.exp(-0.5) * 3.0), 0.5 * (1 - math.exp(1.0) * 2.0)]
    )
    # trained to its optimum s_i = log L_i, the weight on L_i is w_i / L_i
    optimizer = torch.optim.SGD(method.parameters(), lr=0.5)
    fixed_losses = torch.tensor([4.0, 0.5])
    for i in range(400):
        optimizer.zero_grad()
        weights = step(method, fixed_losses.clone(), i)
        optimizer.step()
    assert weights.tolist() == pytest.approx([2.0 / 4.0, 0.5 / 0.5], abs=1e-3)


def test_dwa_is_one_for_two_epochs_then_a_softmax_of_loss_ratios():
    method = make("dwa", temperature=2.0)
    theta = torch.ones(2, requires_grad=True)
    assert step(method, losses_of(theta, [1.0, 1.0])).tolist() == [1.0, 1.0]
    method.epoch_end(torch.tensor([2.0, 1.0]))
    assert step(method, losses_of(theta, [1.0, 1.0])).tolist() == [1.0, 1.0]
    method.epoch_end(torch.tensor([1.0, 0.9]))  # ratios 0.5 and 0.9: task 1 fell less, weighs more
    expected = [2 * math.exp(r / 2) / (math.exp(0.5 / 2) + math.exp(0.9 / 2)) for r in (0.5, 0.9)]
    theta.grad = None
    weights = step(method, losses_of(theta, [1.0, 1.0]))
    assert weights.tolist() == pytest.approx(expected)
    assert theta.grad.tolist() == pytest.approx(expected)
    assert dwa_weights(torch.tensor([1.0, 0.9]), torch.tensor([2.0, 1.0]), 2.0).tolist() == pytest.approx(expected)


def test_rlw_weights_are_a_fresh_random_softmax_each_step_and_seeded():
    method = make("rlw", k=3)
    theta = torch.ones(3, requires_grad=True)
    torch.manual_seed(0)
    first = step(method, losses_of(theta, [1.0] * 3))
    second = step(method, losses_of(theta, [1.0] * 3))
    torch.manual_seed(0)
    again = step(method, losses_of(theta, [1.0] * 3))
    assert first.sum() == pytest.approx(1.0) and (first > 0).all()
    assert not torch.equal(first, second) and torch.equal(first, again)
    torch.manual_seed(0)
    assert first.tolist() == pytest.approx(torch.softmax(torch.randn(3), 0).tolist())


def test_gls_is_the_geometric_mean_with_implied_weights():
    method = make("gls", k=3)
    theta = torch.ones(3, requires_grad=True)
    values = [1.0, 2.0, 4.0]
    weights = step(method, losses_of(theta, values))
    geometric = (1.0 * 2.0 * 4.0) ** (1 / 3)
    assert weights.tolist() == pytest.approx([geometric / (3 * v) for v in values])
    # d/dtheta_i (prod L)^(1/3) = G/(3 L_i) * dL_i/dtheta_i = G/(3 L_i) * v_i
    assert theta.grad.tolist() == pytest.approx([geometric / 3] * 3)


def test_famo_loss_gradient_and_logit_update():
    logits = torch.tensor([0.3, -0.2])
    losses = torch.tensor([2.0, 0.5], requires_grad=True)
    loss, weights = famo_loss(losses, logits)
    loss.backward()
    assert losses.grad.tolist() == pytest.approx(weights.tolist())
    assert weights.sum() == pytest.approx(1.0)
    z = torch.softmax(logits, 0)
    assert (weights * losses.detach()).tolist() == pytest.approx((z / (z / losses.detach()).sum()).tolist())
    # The logit gradient is the softmax Jacobian applied to the drop in log-loss.
    previous, current = torch.tensor([2.0, 1.0]), torch.tensor([1.0, 0.9])
    x = logits.clone().requires_grad_(True)
    (torch.softmax(x, 0) @ (previous.log() - current.log())).backward()
    assert famo_logit_grad(logits, previous, current).tolist() == pytest.approx(x.grad.tolist(), rel=1e-5)


def test_famo_shifts_weight_to_the_task_whose_loss_falls_slower():
    method = make("famo")
    theta = torch.ones(2, requires_grad=True)
    for i in range(30):
        fast, slow = 2.0 * 0.8**i, 2.0 * 0.99**i
        weights = step(method, losses_of(theta, [fast, slow]), i)
    z = torch.softmax(method.logits, 0)
    assert z[1] > 0.6 and z[1] > z[0]
    assert weights.sum() == pytest.approx(1.0)


def test_gradnorm_weight_gradient_sign():
    norms = torch.tensor([1.0, 1.0])
    weights = torch.tensor([1.0, 1.0])
    # Task 1 trains slower (its loss ratio is higher): its weight must go up (negative gradient).
    grad = gradnorm_weight_grad(norms, weights, torch.tensor([0.5, 1.0]), alpha=1.5)
    assert grad[1] < 0 < grad[0]
    # Balanced already: target equals the weighted norm, no push beyond sign(0) = 0.
    assert gradnorm_weight_grad(norms, weights, torch.tensor([0.7, 0.7]), 1.5).tolist() == [0.0, 0.0]


class _TwoHeads(nn.Module):
    """A shared linear layer and one scalar head per task (for GradNorm's last-shared-layer norms)."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(4, 4)
        self.heads = nn.ModuleList([nn.Linear(4, 1), nn.Linear(4, 1)])


def test_gradnorm_moves_weights_towards_equal_relative_training_rates():
    torch.manual_seed(0)
    net = _TwoHeads()
    method = make("gradnorm", alpha=1.5)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.05)
    x = torch.randn(32, 4)
    history = []
    for i in range(40):
        features = net.shared(x)
        # task 1's loss stays at its initial value (it trains slowly); task 0's falls quickly
        scale = torch.tensor([0.9**i, 1.0])
        task_losses = [s * net.heads[j](features).pow(2).mean() for j, s in enumerate(scale)]
        net.zero_grad()
        optimizer.zero_grad()
        losses = torch.stack(task_losses)
        shared = list(net.shared.parameters())
        heads = list(net.heads.parameters())
        weights = method.backward(losses, StepContext(shared, None, i, 1, task_losses=task_losses, task_params=heads))
        optimizer.step()
        history.append(weights.tolist())
    assert history[-1][1] > history[0][1] + 0.3 and history[-1][0] < history[0][0] - 0.3
    assert sum(history[-1]) == pytest.approx(2.0, abs=0.1)  # renormalised to sum k
    assert net.shared.weight.grad is not None
