"""Delta-m against hand computations, baseline matching and the Pareto front of hand-made points."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mtl_cli.reporting.deltam import DeltaMError, config_distance, delta_m, match_baselines
from mtl_cli.reporting.pareto import pareto_front, plot_pareto
from mtl_cli.reporting.report import swept_keys
from mtl_cli.reporting.runs import RunRecord, parse_overrides

DIRECTIONS = {"seg": {"miou": True, "pixel_accuracy": True}, "depth": {"abs_err": False, "rel_err": False}}


def test_delta_m_hand_computed():
    run = {"seg": {"miou": 0.55, "pixel_accuracy": 0.80}, "depth": {"abs_err": 0.30, "rel_err": 0.25}}
    base = {"seg": {"miou": 0.50, "pixel_accuracy": 0.80}, "depth": {"abs_err": 0.40, "rel_err": 0.20}}
    # seg.miou: +(0.55-0.5)/0.5 = +10%; pixel acc 0%; abs_err lower-better: -(0.3-0.4)/0.4 = +25%;
    # rel_err: -(0.25-0.2)/0.2 = -25%  ->  mean (10 + 0 + 25 - 25) / 4 = 2.5
    assert delta_m(run, base, DIRECTIONS) == pytest.approx(2.5)


def test_delta_m_of_the_baseline_itself_is_zero_and_direction_matters():
    base = {"depth": {"abs_err": 0.4, "rel_err": 0.2}}
    assert delta_m(base, base, DIRECTIONS) == 0.0
    worse = {"depth": {"abs_err": 0.8, "rel_err": 0.4}}  # doubled errors: -100% each
    assert delta_m(worse, base, DIRECTIONS) == pytest.approx(-100.0)
    flipped = {"depth": {"abs_err": True, "rel_err": True}}
    assert delta_m(worse, base, flipped) == pytest.approx(100.0)


@pytest.mark.parametrize(
    "base, message",
    [
        ({"depth": {"abs_err": 0.0, "rel_err": 0.2}}, "is 0.0"),
        ({"depth": {"abs_err": math.nan, "rel_err": 0.2}}, "is nan"),
        ({"depth": {"rel_err": 0.2}}, "no baseline value for depth.abs_err"),
    ],
)
def test_delta_m_undefined_is_an_error(base, message):
    with pytest.raises(DeltaMError, match=message):
        delta_m({"depth": {"abs_err": 0.3, "rel_err": 0.2}}, base, DIRECTIONS)


def _run(name: str, tasks: list[str], config: dict, status: str = "completed") -> RunRecord:
    summary = {"status": status, "tasks": tasks}
    return RunRecord(Path("/runs") / name, status, summary, {}, config, name)


def test_baselines_match_the_closest_config_ignoring_tasks_and_loss_weights():
    run_config = {
        "optim.lr": 0.01,
        "backbone.width": 8,
        "tasks.cls.kind": "cls",
        "tasks.seg.kind": "seg",
        "loss.weights.seg": 2.0,
    }
    near = _run(
        "near", ["cls"], {"optim.lr": 0.01, "backbone.width": 8, "tasks.cls.kind": "cls", "loss.weights.cls": 1.0}
    )
    far = _run("far", ["cls"], {"optim.lr": 0.1, "backbone.width": 8, "tasks.cls.kind": "cls"})
    failed = _run("failed", ["cls"], {"optim.lr": 0.01, "backbone.width": 8}, status="failed")
    seg = _run("seg", ["seg"], {"optim.lr": 0.1, "backbone.width": 16})
    multi = _run("multi", ["cls", "seg"], run_config)
    matches = match_baselines(["cls", "seg", "depth"], run_config, [far, failed, multi, near, seg])
    assert matches["cls"].run.name == "near" and matches["cls"].differences == []
    assert matches["seg"].run.name == "seg"
    assert matches["seg"].differences == ["backbone.width", "optim.lr"]
    assert "depth" not in matches  # no single-task depth run: left out, not guessed
    assert config_distance({"sweep.objective": "delta_m", "trainer.resume": "x"}, {}) == []


def test_swept_keys_are_the_overrides_that_vary():
    runs = [_run(str(i), ["cls"], {}) for i in range(3)]
    for run, overrides in zip(runs, (["task=cls", "a=1", "b=2"], ["task=cls+seg", "a=1", "b=3"], ["task=seg", "a=1"])):
        run.overrides = parse_overrides(overrides)
    assert swept_keys(runs) == ["task", "b"]
    assert parse_overrides(["+x.y=1", "~z", "loss.weights.seg=0.5"]) == {"x.y": "1", "loss.weights.seg": "0.5"}


def test_pareto_front_of_hand_made_points():
    points = [(0.9, 0.1), (0.5, 0.5), (0.1, 0.9), (0.4, 0.4), (0.5, 0.2), (0.9, 0.1), (math.nan, 1.0)]
    # (0.4,0.4) is dominated by (0.5,0.5); (0.5,0.2) by (0.5,0.5); equal points both stay; NaN never.
    assert pareto_front(points, (True, True)) == [0, 1, 2, 5]
    # Lower-is-better on y: the best y are the smallest.
    assert pareto_front(points, (True, False)) == [0, 5]
    assert pareto_front([(1.0, 5.0), (2.0, 4.0), (3.0, 6.0)], (False, False)) == [0, 1]


def test_pareto_plot_is_written(tmp_path):
    front = plot_pareto(
        tmp_path / "p.png", [(0.1, 0.9), (0.5, 0.5), (0.3, 0.3)], ["a", "b", "c"], ("x", "y"), (True, True)
    )
    assert front == [0, 1]
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
