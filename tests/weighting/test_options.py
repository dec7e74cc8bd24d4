"""weighting.* options: typed per method, range-checked, defaults in the YAML equal to the schema's."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from mtl_cli.config import CONFIG_DIR
from mtl_cli.errors import UserError
from mtl_cli.weighting import METHODS, build_weighting, parse_options
from mtl_cli.weighting.cagrad import CAGradOptions
from mtl_cli.weighting.gradients import GradOn

from .conftest import compose_config

CONFIGS = CONFIG_DIR / "weighting"


def test_one_yaml_per_method_with_the_schema_defaults():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(METHODS)
    for name in METHODS:
        raw = OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{name}.yaml"))
        assert raw["name"] == name
        assert dataclasses.asdict(parse_options(name, raw)) == dataclasses.asdict(METHODS[name].options_class()), name
        assert set(raw) - {"name"} == {f.name for f in dataclasses.fields(METHODS[name].options_class)}, name


def test_overrides_are_typed():
    cfg = compose_config("weighting=cagrad", "weighting.alpha=1", "weighting.grad_on=features")
    options = parse_options("cagrad", cfg.weighting)
    assert isinstance(options, CAGradOptions)
    assert options.alpha == 1.0 and isinstance(options.alpha, float)
    assert options.grad_on is GradOn.features


@pytest.mark.parametrize(
    "name, raw, message",
    [
        ("uw", {"alpha": 1.0}, r"weighting\.alpha: weighting=uw has no option 'alpha'; its options: none"),
        ("cagrad", {"alpha": "abc"}, r"weighting\.alpha=abc: wrong type for weighting=cagrad"),
        ("cagrad", {"alpha": -1.0}, r"weighting\.alpha=-1\.0: cagrad needs alpha >= 0"),
        ("cagrad", {"rescale": 3}, r"weighting\.rescale=3"),
        ("mgda", {"grad_on": "both"}, r"weighting\.grad_on=both.*expected one of \[params, features\]"),
        ("mgda", {"normalization": "l1"}, r"weighting\.normalization=l1"),
        ("db_mtl", {"grad_on": "features"}, r"weighting\.grad_on=features: db_mtl needs grad_on=params"),
        ("dwa", {"temperature": 0.0}, r"weighting\.temperature=0\.0"),
        ("nash_mtl", {"update_weights_every": 0}, r"weighting\.update_weights_every=0"),
        ("gradvac", {"beta": 2.0}, r"weighting\.beta=2\.0"),
        ("famo", {"lr": 0.0}, r"weighting\.lr=0\.0"),
        ("nope", {}, r"unknown weighting method 'nope'; known methods: ew, fixed, uw, dwa"),
    ],
)
def test_bad_options_are_one_line_user_errors(name, raw, message):
    with pytest.raises(UserError, match=message) as info:
        parse_options(name, {"name": name, **raw})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", sorted(n for n, m in METHODS.items() if not m.uses_static_weights))
def test_loss_weights_with_a_method_that_sets_its_own_weights_is_an_error(name):
    with pytest.raises(UserError, match=rf"loss\.weights\.seg=2\.0 has no effect with weighting={name}"):
        compose_config(f"weighting={name}", "loss.weights.seg=2.0")
    compose_config(f"weighting={name}", "loss.weights.seg=1.0")  # the default weight is fine


@pytest.mark.parametrize("name", ["ew", "fixed", "uw"])
def test_static_weights_are_used_by_ew_fixed_and_uw(name):
    cfg = compose_config(f"weighting={name}", "loss.weights.seg=2.5")
    method = build_weighting(name, ["cls", "seg"], [1.0, 2.5], cfg.weighting)
    assert method.static_weights.tolist() == [1.0, 2.5]


@pytest.mark.parametrize("value", ["-1.0", "nan", "inf"])
def test_negative_or_nan_weights_are_errors(value):
    with pytest.raises(UserError, match=r"loss\.weights\.seg=.*a loss weight must be a finite number >= 0"):
        compose_config("weighting=fixed", f"loss.weights.seg={value}")
