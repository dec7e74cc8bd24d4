"""A two-task toy with conflicting objectives: the gradient methods reach a Pareto-stationary point."""

from __future__ import annotations

import pytest
import torch

from mtl_cli.weighting import AGGREGATORS, DBMTLState, NashState, aggregate
from mtl_cli.weighting.qp import min_norm_simplex

A = torch.tensor([1.0, 0.0], dtype=torch.float64)  # minimiser of task 1
B = torch.tensor([-1.0, 0.5], dtype=torch.float64)  # minimiser of task 2
CURVATURE = torch.diag(torch.tensor([1.0, 10.0], dtype=torch.float64))


def losses(theta: torch.Tensor) -> torch.Tensor:
    return torch.stack([((theta - A) ** 2).sum(), (theta - B) @ CURVATURE @ (theta - B)])


def grads(theta: torch.Tensor) -> torch.Tensor:
    return torch.stack([2 * (theta - A), 2 * CURVATURE @ (theta - B)])


def stationarity(theta: torch.Tensor) -> float:
    """Norm of the min-norm point of the gradients' convex hull: 0 exactly at Pareto-stationary points."""
    g = grads(theta)
    return float((min_norm_simplex(g @ g.T) @ g).norm())


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_gradient_methods_converge_to_a_pareto_stationary_point(name):
    theta = torch.tensor([3.0, 3.0], dtype=torch.float64)
    state: dict = {
        "gradvac": {"targets": torch.zeros(2, 2, dtype=torch.float64)},
        "nash_mtl": {"state": NashState.initial(2)},
        "db_mtl": {"state": DBMTLState(torch.zeros(2, 2, dtype=torch.float64), torch.zeros((), dtype=torch.long))},
    }.get(name, {})
    if name in ("pcgrad", "gradvac"):
        state["generator"] = torch.Generator().manual_seed(0)
    start = stationarity(theta)
    for t in range(400):
        g = grads(theta)
        if name == "db_mtl":  # DB-MTL differentiates the log-losses
            g = g / losses(theta)[:, None]
        combined, _ = aggregate(name, g, **state)
        theta = theta - 0.1 * 0.985**t * combined
    assert stationarity(theta) < 1e-3 * start
    # a trade-off between the two tasks, not a point beyond either minimiser
    assert float(losses(theta).max()) < float(losses(torch.tensor([3.0, 3.0], dtype=torch.float64)).min())
