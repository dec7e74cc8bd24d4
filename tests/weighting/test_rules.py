"""Each gradient method's combination rule against its defining property, on hand-built gradients."""

from __future__ import annotations

import pytest
import torch

from mtl_cli.weighting import AGGREGATORS, DBMTLState, NashState, aggregate
from mtl_cli.weighting.aligned_mtl import alignment_matrix
from mtl_cli.weighting.cagrad import cagrad_weights
from mtl_cli.weighting.gradvac import gradvac_coefficients
from mtl_cli.weighting.nash_mtl import bargaining_solution, nash_weights
from mtl_cli.weighting.pcgrad import pcgrad_coefficients
from mtl_cli.weighting.qp import min_norm_simplex, nonneg_qp
from mtl_cli.weighting.upgrad import dual_cone_coefficients


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def conflicting(k: int, d: int = 6, seed: int = 0) -> torch.Tensor:
    """k random gradients in d dimensions, the second pointing partly against the first."""
    g = torch.randn(k, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    g[1] = -0.8 * g[0] + 0.4 * g[1]
    return g


def simplex_grid(k: int, n: int) -> torch.Tensor:
    """All points of the k-simplex with coordinates in multiples of 1/n."""
    axes = torch.cartesian_prod(*[torch.arange(n + 1, dtype=torch.float64)] * (k - 1)).reshape(-1, k - 1)
    axes = axes[axes.sum(1) <= n]
    return torch.cat([axes, n - axes.sum(1, keepdim=True)], dim=1) / n


# ----------------------------------------------------------------- MGDA
@pytest.mark.parametrize("k, n", [(2, 20000), (3, 300)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mgda_is_the_min_norm_point_of_the_convex_hull(k, n, seed):
    grads = conflicting(k, seed=seed)
    combined, weights = aggregate("mgda", grads)
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1.0)
    grid = simplex_grid(k, n)
    brute = ((grid @ grads).norm(dim=1) ** 2).min()
    ours = combined.norm() ** 2
    assert ours <= brute + 1e-9
    resolution = (2.0 / n) ** 2 * torch.trace(grads @ grads.T)  # how far the grid's best can be off
    assert ours >= brute - resolution


def test_mgda_with_zero_in_the_hull_returns_zero_and_all_tasks_agree_on_descent():
    g = t([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    combined, weights = aggregate("mgda", g)
    assert combined.norm() < 1e-8
    assert weights[:2].tolist() == pytest.approx([0.5, 0.5], abs=1e-8)
    agree = t([[1.0, 0.0], [0.0, 2.0]])
    combined, _ = aggregate("mgda", agree)
    assert (agree @ combined).min() > 0  # a common descent direction


def test_mgda_normalisations_rescale_the_problem():
    g = t([[10.0, 0.0], [0.0, 1.0]])
    _, plain = aggregate("mgda", g)
    _, l2 = aggregate("mgda", g, normalization="l2")
    assert plain.tolist() == pytest.approx([1 / 101, 100 / 101])
    # On unit gradients the min-norm point weighs both equally; on the raw ones that is 1/(2*10), 1/2.
    assert l2.tolist() == pytest.approx([0.05, 0.5])
    _, by_loss = aggregate("mgda", g, losses=t([10.0, 1.0]), normalization="loss")
    assert by_loss.tolist() == pytest.approx([0.05, 0.5])


def test_min_norm_solver_handles_duplicate_and_zero_gradients():
    g = t([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    w = min_norm_simplex(g @ g.T)
    assert (w @ g).norm() < 1e-6


# ----------------------------------------------------------------- PCGrad
def test_pcgrad_hand_computed_two_tasks():
    g = t([[1.0, 0.0], [-1.0, 1.0]])
    combined, weights = aggregate("pcgrad", g)
    # P1 = g1 - (g1.g2/|g2|^2) g2 = (0.5, 0.5); P2 = g2 - (g1.g2/|g1|^2) g1 = (0, 1)
    assert combined.tolist() == pytest.approx([0.5, 1.5])
    assert weights.tolist() == pytest.approx([2.0, 1.5])


def test_pcgrad_projected_gradients_do_not_conflict_and_others_are_untouched():
    g = conflicting(2)
    coef = pcgrad_coefficients(g @ g.T, torch.tensor([[0, 1], [1, 0]]))
    projected = coef @ g
    assert projected[0] @ g[1] >= -1e-10 and projected[1] @ g[0] >= -1e-10
    assert projected[0] @ g[1] == pytest.approx(0.0, abs=1e-10)  # the conflicting component is gone
    friendly = t([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.2, 1.0]])
    combined, weights = aggregate("pcgrad", friendly)
    assert weights.tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert combined.tolist() == pytest.approx(friendly.sum(0).tolist())


def test_pcgrad_each_projection_removes_the_conflict_with_that_task():
    g = t([[1.0, 0.0, 0.0], [-0.5, 1.0, 0.0], [-0.5, 0.0, 1.0]])
    orders = torch.tensor([[1, 2, 0], [0, 2, 1], [1, 0, 2]])
    coef = pcgrad_coefficients(g @ g.T, orders)
    projected = coef @ g
    # By hand: g0 -> g0 + 0.4 g1 = (0.8, 0.4, 0) -> + 0.32 g2 = (0.64, 0.4, 0.32)
    assert projected[0].tolist() == pytest.approx([0.64, 0.4, 0.32])
    assert (projected[0] @ g.T).tolist() == pytest.approx([0.64, 0.08, 0.0], abs=1e-12)
    assert projected[1] @ g[0] >= -1e-12 and projected[2] @ g[0] >= -1e-12


# ----------------------------------------------------------------- GradVac
def test_gradvac_with_zero_targets_is_pcgrad():
    g = conflicting(2)
    orders = torch.tensor([[0, 1], [1, 0]])
    targets = torch.zeros(2, 2, dtype=torch.float64)
    expected = pcgrad_coefficients(g @ g.T, orders)
    assert torch.allclose(gradvac_coefficients(g @ g.T, orders, targets, 0.01), expected)


def test_gradvac_raises_the_cosine_to_the_target_and_moves_the_targets():
    g = t([[1.0, 0.0], [0.0, 2.0]])  # orthogonal: cosine 0
    targets = torch.full((2, 2), 0.5, dtype=torch.float64)
    coef = gradvac_coefficients(g @ g.T, torch.tensor([[0, 1], [1, 0]]), targets, 0.1)
    adjusted = coef @ g
    for i, j in ((0, 1), (1, 0)):
        cosine = adjusted[i] @ g[j] / (adjusted[i].norm() * g[j].norm())
        assert cosine == pytest.approx(0.5)
        assert targets[i, j] == pytest.approx(0.9 * 0.5 + 0.1 * 0.0)
    above = torch.full((2, 2), -0.5, dtype=torch.float64)  # cosine 0 is above the target: nothing changes
    unchanged = gradvac_coefficients(g @ g.T, torch.tensor([[0, 1], [1, 0]]), above, 0.1)
    assert torch.equal(unchanged, torch.eye(2, dtype=torch.float64))


# ----------------------------------------------------------------- CAGrad
def test_cagrad_alpha_zero_is_the_mean_gradient():
    g = conflicting(3)
    combined, weights = aggregate("cagrad", g, alpha=0.0)
    assert weights.tolist() == pytest.approx([1 / 3] * 3)
    assert combined.tolist() == pytest.approx(g.mean(0).tolist())


@pytest.mark.parametrize("k, n", [(2, 20000), (3, 300)])
@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.9])
def test_cagrad_maximises_the_worst_improvement_in_the_ball(k, n, alpha):
    g = conflicting(k, seed=3)
    combined, weights = aggregate("cagrad", g, alpha=alpha, rescale=0)
    g0 = g.mean(0)
    c = alpha * g0.norm()
    assert (combined - g0).norm() == pytest.approx(c.item(), rel=1e-6)  # on the ball's boundary
    worst = (g @ combined).min()
    # The dual point: weights = 1/k + (c / ||g_w||) w with w on the simplex.
    w = (weights - 1.0 / k) / (weights.sum() - 1.0)
    assert w.min() >= -1e-12 and w.sum() == pytest.approx(1.0)
    dual = w @ g @ g0 + c * (w @ g).norm()
    # Zero duality gap certifies that both are optimal (weak duality: worst <= optimum <= dual) ...
    assert worst == pytest.approx(dual.item(), rel=1e-6, abs=1e-12)
    # ... and no point of a fine simplex grid has a lower dual objective.
    grid = simplex_grid(k, n) @ g
    assert dual <= (grid @ g0 + c * grid.norm(dim=1)).min() + 1e-12
    # and no other direction in the ball does better
    directions = torch.randn(2000, g.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    candidates = g0 + c * directions / directions.norm(dim=1, keepdim=True)
    assert (candidates @ g.T).min(dim=1).values.max() <= worst + 1e-9


def test_cagrad_rescale_modes():
    g = conflicting(2)
    raw = cagrad_weights(g @ g.T, 0.5, 0)
    assert torch.allclose(cagrad_weights(g @ g.T, 0.5, 1), raw / 1.25)
    assert torch.allclose(cagrad_weights(g @ g.T, 0.5, 2), raw / 1.5)


# ----------------------------------------------------------------- IMTL
@pytest.mark.parametrize("k", [2, 3, 4])
def test_imtl_projections_on_unit_gradients_are_equal(k):
    g = conflicting(k, d=8, seed=k)
    g[0] *= 10.0  # very different scales
    combined, weights = aggregate("imtl", g)
    units = g / g.norm(dim=1, keepdim=True)
    projections = units @ combined
    assert projections.tolist() == pytest.approx([projections[0].item()] * k, rel=1e-8)
    assert weights.sum() == pytest.approx(1.0)
    assert projections[0] > 0


# ----------------------------------------------------------------- Nash-MTL
@pytest.mark.parametrize("k", [2, 3, 5])
def test_nash_weights_satisfy_the_bargaining_condition(k):
    g = torch.randn(k, 20, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    state = NashState.initial(k, torch.device("cpu"))
    combined, a = aggregate("nash_mtl", g, state=state, max_norm=0.0)
    K = g @ g.T
    K = K / torch.linalg.matrix_norm(K)
    assert (K @ a).tolist() == pytest.approx((1.0 / a).tolist(), rel=1e-6)
    assert a.min() > 0
    assert int(state.failures) == 0 and int(state.solves) == 1
    assert state.weights.tolist() == pytest.approx(a.tolist())
    # every task improves: <g_i, d> = ||K|| / a_i > 0
    assert (g @ combined).min() > 0


def test_nash_solver_from_a_bad_start_and_clipping():
    g = t([[1.0, 0.0], [0.0, 100.0]])
    K = g @ g.T / torch.linalg.matrix_norm(g @ g.T)
    a, ok = bargaining_solution(K, t([1.0, 1e3]), max_iter=20)  # 100 and 1000 times off
    assert bool(ok) and a.tolist() == pytest.approx([100.0, 1.0], rel=1e-6)
    state = NashState.initial(2)
    combined, _ = aggregate("nash_mtl", g, state=state, max_norm=0.5)
    assert combined.norm() == pytest.approx(0.5)


def test_nash_failure_falls_back_to_previous_weights_and_is_counted():
    state = NashState.initial(2)
    state.weights.copy_(t([0.3, 0.7]))
    opposite = t([[1.0, 2.0], [-1.0, -2.0]])  # Pareto-stationary: no bargaining solution
    weights = nash_weights(opposite @ opposite.T, state, step=17, max_norm=0.0)
    assert weights.tolist() == pytest.approx([0.3, 0.7])
    assert int(state.failures) == 1 and int(state.last_failure_step) == 17
    good = torch.eye(2, dtype=torch.float64)
    nash_weights(good, state, step=18, max_norm=0.0)
    assert int(state.failures) == 1 and int(state.solves) == 2
    assert state.weights.tolist() == pytest.approx([2**0.25, 2**0.25])  # K/||K|| = I/sqrt(2): a = 2^(1/4)


# ----------------------------------------------------------------- Aligned-MTL
def test_aligned_gradients_are_orthogonal_with_the_smallest_singular_value():
    g = conflicting(3, d=7)
    B = alignment_matrix(g @ g.T, "min")
    aligned = B @ g
    sigma_min = torch.linalg.svdvals(g).min()
    assert torch.allclose(aligned @ aligned.T, sigma_min**2 * torch.eye(3, dtype=torch.float64), atol=1e-9)
    combined, weights = aggregate("aligned_mtl", g)
    assert combined.tolist() == pytest.approx(aligned.sum(0).tolist())
    assert torch.linalg.svdvals(aligned).tolist() == pytest.approx([sigma_min.item()] * 3)


def test_aligned_mtl_rank_deficient_and_scale_modes():
    g = t([[1.0, 0.0], [0.0, 2.0], [1.0, 2.0]])  # rank 2
    aligned = alignment_matrix(g @ g.T, "min") @ g
    singular = torch.linalg.svdvals(g)[:2]
    # aligned aligned^T = sigma_min^2 times the projector onto the range of G G^T
    eigenvalues = torch.linalg.eigvalsh(aligned @ aligned.T)
    assert eigenvalues.tolist() == pytest.approx(
        [0.0, singular.min().item() ** 2, singular.min().item() ** 2], abs=1e-9
    )
    rmse = alignment_matrix(g @ g.T, "rmse") @ g
    assert torch.linalg.svdvals(rmse)[0] == pytest.approx((singular**2).mean().sqrt().item())
    median = alignment_matrix(g @ g.T, "median") @ g
    assert torch.linalg.svdvals(median)[0] == pytest.approx(singular.min().item())  # lower median of two


# ----------------------------------------------------------------- UPGrad
def test_upgrad_never_conflicts_and_projections_satisfy_kkt():
    g = conflicting(3, d=5, seed=4)
    combined, weights = aggregate("upgrad", g)
    assert (g @ combined).min() >= -1e-9
    K = g @ g.T
    coef = dual_cone_coefficients(K)
    for i in range(3):
        v = coef[i] @ g
        dual = coef[i] - torch.eye(3, dtype=torch.float64)[i]
        slack = g @ v
        assert dual.min() >= 0 and slack.min() >= -1e-8  # primal and dual feasible
        assert (dual * slack).abs().max() < 1e-8  # complementary slackness: v is the projection
    assert weights.tolist() == pytest.approx(coef.mean(0).tolist())


def test_upgrad_without_conflict_is_the_mean():
    g = t([[1.0, 0.2], [0.3, 1.0], [1.0, 1.0]])
    combined, weights = aggregate("upgrad", g)
    assert weights.tolist() == pytest.approx([1 / 3] * 3)
    assert combined.tolist() == pytest.approx(g.mean(0).tolist())


def test_nonneg_qp_matches_a_hand_solution():
    K = t([[2.0, 0.0], [0.0, 1.0]])
    b = t([[-2.0, 1.0], [1.0, 1.0]])
    w = nonneg_qp(K, b)
    assert torch.allclose(w, t([[1.0, 0.0], [0.0, 0.0]]))


# ----------------------------------------------------------------- DB-MTL
def test_db_mtl_balances_the_averaged_gradient_norms():
    g = t([[3.0, 0.0], [0.0, 0.5]])
    state = DBMTLState(torch.zeros(2, 2, dtype=torch.float64), torch.zeros((), dtype=torch.long))
    combined, weights = aggregate("db_mtl", g, state=state, beta=0.9, beta_sigma=0.5)
    assert torch.allclose(state.average, 0.1 * g)  # rate 0.9 / 1^0.5 from zero
    assert weights.tolist() == pytest.approx([1.0, 6.0])
    assert (weights[:, None] * state.average).norm(dim=1).tolist() == pytest.approx([0.3, 0.3])
    aggregate("db_mtl", g, state=state, beta=0.9, beta_sigma=0.5)
    rate = 0.9 / 2**0.5
    assert torch.allclose(state.average, g + rate * (0.1 * g - g))
    assert int(state.steps) == 2


def test_every_rule_keeps_float32_inputs_in_float32():
    g = conflicting(2).float()
    extra = {
        "gradvac": {"targets": torch.zeros(2, 2)},
        "nash_mtl": {"state": NashState.initial(2)},
        "db_mtl": {"state": DBMTLState(torch.zeros(2, 6), torch.zeros((), dtype=torch.long))},
    }
    for name in AGGREGATORS:
        combined, weights = aggregate(name, g, **extra.get(name, {}))
        assert combined.dtype == torch.float32 and combined.shape == (6,), name
        assert weights.shape == (2,) and torch.isfinite(weights).all(), name


def test_unknown_rule_lists_the_rules():
    with pytest.raises(ValueError, match="mgda, pcgrad"):
        aggregate("nope", torch.zeros(2, 3))
