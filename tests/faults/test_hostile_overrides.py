"""Issue 12, systematic part: hostile values for every key of the schema.

Each example draws a key of ``mtl_cli/config/schema.py`` and a hostile value (wrong type,
negative, zero, NaN/inf, huge, empty, unicode, a path that is a file). The command must
either be refused in one line on stderr with exit 2, no traceback and nothing left in
the working directory, or pass every check (then it would train). Values that can never
be right (a wrong type, NaN/inf, a negative count) must be refused.

The fast property runs in this process the steps ``mtl-train`` takes before training:
Hydra's own override parsing and application on the composed config, the run-directory
guard (which validates before it claims the directory), all inside ``run_cli``'s error
handling. A few examples also go through the real console entry point.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import io
import sys
import typing
from pathlib import Path

import pytest
from faults_helpers import leftovers, run_train
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf, open_dict

from mtl_cli.cli import run_cli
from mtl_cli.config import CONFIG_DIR, MTLConfig, register_configs
from mtl_cli.hydra_callbacks import RunDirGuard

PATH_KEYS = {"data.root", "data.cache_dir", "backbone.pretrained", "trainer.resume"}
FILE = "a_file.txt"  # a file in the working directory, for keys that take paths


def _leaf_keys(cls: type, prefix: str = "") -> dict[str, typing.Any]:
    """``{"trainer.epochs": int, ...}``: every leaf key of the schema with its annotation."""
    keys: dict[str, typing.Any] = {}
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            keys.update(_leaf_keys(kind, f"{prefix}{field.name}."))
        elif typing.get_origin(kind) is not dict and kind is not typing.Any:
            keys[f"{prefix}{field.name}"] = kind
    return keys


KEYS = _leaf_keys(MTLConfig)
KEYS["loss.weights.cls"] = float
KEYS["weighting.alpha"] = float  # ew has no options: refused whatever the value


def _base(kind: typing.Any) -> tuple[type, bool]:
    """The annotation without ``Optional`` and whether ``null`` is allowed."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) is typing.Union:
        return args[0], True
    return kind, False


def _hostile(key: str, kind: typing.Any) -> st.SearchStrategy[tuple[str, bool]]:
    """``(value as typed on the command line, whether it must be refused)``."""
    base, _ = _base(kind)
    never = ["abc", "[1,2]", "{a: 1}"]  # wrong types for anything but a string
    maybe = ["0", "''", "'ünï©ødé ∂'", "1e308", "99999999999999999999", FILE if key in PATH_KEYS else "x"]
    if base is int:
        never += ["1.5", "nan", "-1"] if not key.endswith("seed") else ["1.5", "nan"]
    elif base is float:
        never += ["nan", "inf", "-inf"]
        maybe += ["-1", "-1e-30"]
    elif base is bool:
        never += ["maybe", "0.5"]  # (OmegaConf reads any integer as a bool)
    elif isinstance(base, type) and issubclass(base, enum.Enum):
        never += ["not_an_option", "1"]
    elif typing.get_origin(base) is list:
        never = ["abc", "{a: 1}", *(["[nan, inf]"] if typing.get_args(base) != (str,) else [])]
        maybe += ["[]", "[-1, -1]", "[0]", "[1, 2]"]
    else:  # a string
        never, maybe = [], [*maybe, "-1", "nan", "../" * 3]
    if key == "weighting.alpha":
        never, maybe = [*never, *maybe], []
    return st.sampled_from([(v, True) for v in never] + [(v, False) for v in maybe])


@st.composite
def overrides(draw: st.DrawFn) -> tuple[str, bool]:
    key = draw(st.sampled_from(sorted(KEYS)))
    value, must_refuse = draw(_hostile(key, KEYS[key]))
    return f"{key}={value}", must_refuse


@pytest.fixture(scope="module")
def composed() -> DictConfig:
    """``mtl-train``'s composed config (with Hydra's own section), composed once."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=[], return_hydra_config=True)


def _before_training(composed: DictConfig, override: str) -> None:
    """What ``mtl-train <override>`` does before training: apply the override as Hydra does, guard, validate."""
    cfg = composed.copy()
    with open_dict(cfg):
        cfg.hydra.run.dir = "outputs/run"
    ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides([override]), cfg)
    OmegaConf.resolve(cfg.hydra.run)  # as Hydra resolves hydra.run.dir
    RunDirGuard(check_config=True).on_run_start(cfg)


def _check(root: Path, override: str, must_refuse: bool, code: int | None, stderr: str) -> None:
    lines = stderr.strip().splitlines()
    if code is None:  # accepted: every check passed
        assert not must_refuse, f"{override} was accepted"
        return
    assert code == 2 and len(lines) == 1 and lines[0].startswith("mtl-train: error: "), (override, code, stderr)
    assert "Traceback" not in stderr
    assert leftovers(root, keep={FILE}) == [], (override, leftovers(root, keep={FILE}))


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(drawn=overrides())
def test_hostile_overrides_are_refused_cleanly(drawn, composed, tmp_path_factory, monkeypatch):
    override, must_refuse = drawn
    root = tmp_path_factory.mktemp("hostile")
    (root / FILE).write_text("not a directory\n")
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["mtl-train", override])
    err = io.StringIO()
    code: int | None = None
    with contextlib.redirect_stderr(err):
        try:
            run_cli("mtl-train", lambda: _before_training(composed, override))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    _check(root, override, must_refuse, code, err.getvalue())


@settings(
    max_examples=6,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(drawn=overrides())
def test_hostile_overrides_through_the_console_entry(drawn, tmp_path_factory, monkeypatch):
    override, must_refuse = drawn
    root = tmp_path_factory.mktemp("hostile_cli")
    (root / FILE).write_text("not a directory\n")
    outcome = run_train(monkeypatch, root, override)
    if outcome.code is None:
        assert not must_refuse, f"{override} was accepted"
        return
    _check(root, override, must_refuse, outcome.code, outcome.stderr)


def test_the_keys_cover_the_schema():
    assert {"trainer.epochs", "optim.lr", "data.image_size", "relation.lambda", "sweep.objective"} <= KEYS.keys()
    assert _base(KEYS["trainer.max_steps"]) == (int, True)
