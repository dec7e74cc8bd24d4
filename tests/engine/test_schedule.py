"""The per-step warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_cli.engine.schedule import PerStepSchedule, WarmupCosine


def test_warmup_rises_linearly_then_cosine_decays_to_zero():
    factor = WarmupCosine(total=20, warmup=4)
    assert [factor(s) for s in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert factor(4) == pytest.approx(1.0)
    assert factor(12) == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 16)))
    assert factor(20) == pytest.approx(0.0) and factor(50) == pytest.approx(0.0)
    assert WarmupCosine(total=5, warmup=0)(0) == pytest.approx(1.0)


def test_warmup_takes_at_most_a_fifth_of_a_short_run():
    factor = WarmupCosine(total=50, warmup=100)
    assert factor.warmup == 10
    assert factor(9) == pytest.approx(10 / 11) and factor(10) == pytest.approx(1.0)
    assert factor(30) == pytest.approx(0.5)  # halfway through the cosine
    assert WarmupCosine(total=625, warmup=100).warmup == 100


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)


def test_schedule_follows_optimiser_steps_and_ignores_epoch_steps():
    optimizer = _optimizer()
    schedule = PerStepSchedule(optimizer, WarmupCosine(total=8, warmup=2))
    factor = WarmupCosine(total=8, warmup=2)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * factor(0))
    for step in range(1, 6):
        optimizer.step()
        schedule.step()  # the trainer's epoch-end call changes nothing
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * factor(step))


def test_a_restored_schedule_continues_where_it_stopped():
    optimizer = _optimizer()
    schedule = PerStepSchedule(optimizer, WarmupCosine(total=8, warmup=2))
    for _ in range(3):
        optimizer.step()
    other = _optimizer()
    restored = PerStepSchedule(other, WarmupCosine(total=8, warmup=2))
    restored.load_state_dict(schedule.state_dict())
    optimizer.step()
    other.step()
    assert other.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
    assert restored.get_last_lr() == pytest.approx(schedule.get_last_lr())
