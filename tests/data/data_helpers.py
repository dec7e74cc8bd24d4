"""Helpers for the dataset tests: build datasets in-process, run many mtl-train invocations in one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.data import build_datasets
from mtl_cli.engine.build import build_tasks

REPO = Path(__file__).resolve().parents[2]

register_configs()


def compose_cfg(*overrides: str) -> DictConfig:
    """The validated config of ``mtl-train <overrides>``."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return validate(compose("train", overrides=list(overrides)))


def build(*overrides: str) -> tuple[Any, Any]:
    """``(train, val)`` datasets exactly as ``mtl-train <overrides>`` builds them."""
    cfg = compose_cfg(*overrides)
    tasks = build_tasks(cfg)
    return build_datasets(cfg.data, [t.name for t in tasks], {t.name: {**t.settings, "kind": t.kind} for t in tasks})


_BATCH = r"""
import contextlib, io, json, sys, traceback
from mtl_cli.train import main
results = {}
for name, args in json.load(open(sys.argv[1])).items():
    sys.argv = ["mtl-train", *args]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = -1
    results[name] = {"rc": code, "stderr": err.getvalue()}
print("@@RESULTS@@" + json.dumps(results))
"""


def run_train_batch(cases: dict[str, list[str]], cwd: Path) -> dict[str, dict[str, Any]]:
    """Run ``mtl-train <args>`` for every case through its console entry point, all in ONE subprocess.

    Returns ``{case: {"rc": exit code, "stderr": what that invocation wrote to stderr}}``.
    One interpreter for all cases keeps the import cost (torch, Hydra) to one.
    """
    spec = cwd / "cases.json"
    spec.write_text(json.dumps(cases))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, "-c", _BATCH, str(spec)], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    marker = proc.stdout.rfind("@@RESULTS@@")
    if marker < 0:
        raise AssertionError(f"batch run died ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout[marker + len("@@RESULTS@@") :])
