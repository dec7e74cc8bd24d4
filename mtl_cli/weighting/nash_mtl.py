"""Nash-MTL: multi-task learning as a bargaining game (Navon et al., ICML 2022)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mtl_cli.weighting.base import StepContext, require
from mtl_cli.weighting.gradients import GradientOptions, GradientWeighting

log = logging.getLogger("mtl_cli")

_TOLERANCE = 1e-6  # on max_i |a_i (K a)_i - 1| after the Newton iterations


@dataclass
class NashMTLOptions(GradientOptions):
    update_weights_every: int = 1  # solve every n-th step; steps between reuse the last weights
    max_iter: int = 20  # Newton iterations per solve (warm-started from the last weights)
    max_norm: float = 1.0  # clip the combined gradient to this norm (0: no clipping)

    def check(self, method: str) -> None:
        require(
            self.update_weights_every >= 1, method, "update_weights_every", self.update_weights_every, "an integer >= 1"
        )
        require(self.max_iter >= 1, method, "max_iter", self.max_iter, "an integer >= 1")
        require(self.max_norm >= 0, method, "max_norm", self.max_norm, "max_norm >= 0")


@dataclass
class NashState:
    """What Nash-MTL carries between steps: the last weights and the solver's record."""

    weights: Tensor  # (k,) last accepted solution: warm start and fallback
    failures: Tensor  # () number of failed solves
    solves: Tensor  # () number of solves
    last_failure_step: Tensor  # () step of the latest failure, -1 if none

    @classmethod
    def initial(cls, k: int, device: torch.device | None = None) -> NashState:
        return cls(
            weights=torch.ones(k, device=device),
            failures=torch.zeros((), dtype=torch.long, device=device),
            solves=torch.zeros((), dtype=torch.long, device=device),
            last_failure_step=torch.full((), -1, dtype=torch.long, device=device),
        )


def bargaining_solution(gram: Tensor, start: Tensor, max_iter: int = 20) -> tuple[Tensor, Tensor]:
    """Solve ``K a = 1 / a`` with ``a > 0``; returns ``(a, ok)``.

    ``a`` minimises the strictly convex ``f(a) = a^T K a / 2 - sum_i log a_i`` (its
    stationarity condition is the bargaining condition): Newton's method with a line
    search that tries the steps 1, 1/2, ..., 2^-19 at once and keeps the best feasible
    one. On an accelerator all ``max_iter`` iterations run (no data-dependent control
    flow, so no host synchronisation); on the CPU, where reading a value is free, it
    stops once converged. ``ok`` says whether ``a_i (K a)_i = 1`` holds to 1e-6; there
    is no solution when a non-negative combination of the task gradients vanishes (a
    Pareto-stationary point).
    """
    K = gram.to(torch.float64)
    a = start.to(K).clamp_min(1e-12)
    steps = 0.5 ** torch.arange(20, dtype=K.dtype, device=K.device)
    for _ in range(max_iter):
        residual = K @ a - 1.0 / a
        hessian = K + torch.diag(1.0 / (a * a))
        direction, _ = torch.linalg.solve_ex(hessian, -residual)
        trial = a + steps[:, None] * direction  # (20, k)
        positive = (trial > 0).all(dim=1)
        safe = torch.where(positive[:, None], trial, torch.ones_like(trial))
        value = 0.5 * torch.einsum("si,ij,sj->s", safe, K, safe) - safe.log().sum(dim=1)
        value = torch.where(positive & torch.isfinite(value), value, torch.full_like(value, float("inf")))
        a = safe[value.argmin()]
        if K.device.type == "cpu" and bool(_converged(K, a)):
            break
    return a, _converged(K, a)


def _converged(K: Tensor, a: Tensor) -> Tensor:
    return torch.isfinite(a).all() & ((a * (K @ a) - 1.0).abs().max() < _TOLERANCE)


def nash_weights(gram: Tensor, state: NashState, step: int = 0, max_iter: int = 20, max_norm: float = 1.0) -> Tensor:
    """Nash bargaining weights for the gradients with Gram matrix ``gram``; updates ``state`` in place.

    As in the authors' code the Gram matrix is scaled to unit Frobenius norm first (the
    update's size then does not depend on the gradients' scale) and the combined
    gradient is clipped to ``max_norm``. A failed solve keeps the previous weights and
    is counted in ``state``.
    """
    K = gram.to(torch.float64)
    K = K / torch.linalg.matrix_norm(K).clamp_min(1e-30)
    previous = state.weights.to(K)
    # Warm start from the last solution; the first solve starts from the solution for
    # orthogonal gradients, a_i = 1 / ||g_i||.
    usable = (state.solves > state.failures) & torch.isfinite(previous).all() & (previous > 0).all()
    start = torch.where(usable, previous, torch.diagonal(K).clamp_min(1e-12).rsqrt())
    a, ok = bargaining_solution(K, start, max_iter)
    a = torch.where(ok, a, previous)
    state.weights.copy_(a.to(state.weights))
    state.solves.add_(1)
    state.failures.add_((~ok).long())
    state.last_failure_step.copy_(
        torch.where(ok, state.last_failure_step, torch.full_like(state.last_failure_step, step))
    )
    if max_norm > 0:
        norm = (a @ gram.to(torch.float64) @ a).clamp_min(0).sqrt()
        a = a * (max_norm / norm.clamp_min(1e-30)).clamp(max=1.0)
    return a.to(gram.dtype)


class NashMTL(GradientWeighting):
    """Weights ``a`` with ``G G^T a = 1 / a``: the Nash bargaining solution among the tasks.

    Solved on the device by damped Newton (no external solver). A failed solve is
    logged at the next log step, falls back to the previous weights and is counted in
    ``summary.json`` (``weighting.nash_mtl.solve_failures``). With
    ``update_weights_every = n`` only every n-th step computes per-task gradients; the
    others reuse the weights with one ordinary backward pass.
    """

    options_class = NashMTLOptions

    def __init__(self, task_names, static_weights=None, options=None) -> None:
        super().__init__(task_names, static_weights, options)
        initial = NashState.initial(self.num_tasks)
        self.register_buffer("last_weights", initial.weights)
        self.register_buffer("failures", initial.failures)
        self.register_buffer("solves", initial.solves)
        self.register_buffer("last_failure_step", initial.last_failure_step)
        self._reported_failures = 0

    @property
    def state(self) -> NashState:
        return NashState(self.last_weights, self.failures, self.solves, self.last_failure_step)

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        assert isinstance(self.options, NashMTLOptions)
        if ctx.step % self.options.update_weights_every == 0:
            return super().backward(losses, ctx)
        return self._reuse_weights(losses, ctx)

    def _reuse_weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        """A step between solves: the shared block gets sum_i a_i dL_i (clipped), the heads their own."""
        assert isinstance(self.options, NashMTLOptions)
        task_losses = list(ctx.task_losses) or list(losses.unbind(0))
        weights = self.last_weights.to(losses.dtype, copy=True)  # the next solve overwrites the buffer
        targets = self.gradient_targets(ctx)
        weighted = sum(w * loss for w, loss in zip(weights.unbind(0), task_losses))
        grads = torch.autograd.grad(weighted, targets, retain_graph=True, allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for t, g in zip(targets, grads)]
        if ctx.task_params:
            torch.autograd.backward(sum(task_losses), inputs=list(ctx.task_params), retain_graph=self.needs_features)
        if self.options.max_norm > 0:
            squared = torch.stack([g.float().pow(2).sum() for g in grads]).sum()
            # DDP: the root mean square of the ranks' norms (exact without DDP)
            norm = self.all_reduce_mean_(squared).sqrt()
            if ctx.grad_scale is not None:
                norm = norm / ctx.grad_scale
            scale = (self.options.max_norm / norm.clamp_min(1e-30)).clamp(max=1.0)
            torch._foreach_mul_(grads, scale)
            weights = weights * scale.to(weights)
        self.apply_shared_grads(targets, grads, ctx)
        return weights

    def combine(self, grads: Tensor, gram: Tensor, losses: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        assert isinstance(self.options, NashMTLOptions)
        weights = nash_weights(gram, self.state, ctx.step, self.options.max_iter, self.options.max_norm)
        return weights, grads

    def step_report(self, step: int) -> dict[str, float]:
        report = super().step_report(step)
        failures, last = int(self.failures), int(self.last_failure_step)
        if failures > self._reported_failures:
            log.warning(
                "nash_mtl: the bargaining solve failed %d time(s) up to step %d (last at step %d); "
                "those steps reused the previous weights",
                failures - self._reported_failures,
                step,
                last,
            )
            self._reported_failures = failures
        report["nash/solve_failures"] = float(failures)
        return report

    def summary_extras(self) -> dict[str, Any]:
        return {"nash_mtl": {"solves": int(self.solves), "solve_failures": int(self.failures)}}
