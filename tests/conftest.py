"""Shared test helpers: run the CLI in a subprocess against this checkout, tiny configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A run small enough for a few seconds on 2 CPU cores.
TINY = [
    "data.num_train=64",
    "data.num_val=32",
    "data.image_size=32",
    "trainer.batch_size=16",
    "trainer.epochs=2",
    "backbone.width=8",
    "trainer.vis_images=2",
]


def cli_env() -> dict[str, str]:
    """The environment for running the CLI of this checkout in a subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_cli(module: str, args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` with this checkout first on the import path."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_dirs(root: Path) -> list[Path]:
    """Every run directory (one holding summary.json) below ``root``."""
    return sorted(p.parent for p in root.rglob("summary.json"))


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture
def train(tmp_path: Path):
    """Run ``mtl-train`` in ``tmp_path`` with the tiny settings plus ``args``; return the run dir."""

    def _train(*args: str, tiny: bool = True) -> Path:
        before = set(run_dirs(tmp_path))
        run_cli("mtl_cli.train", [*(TINY if tiny else []), *args], cwd=tmp_path)
        new = [d for d in run_dirs(tmp_path) if d not in before]
        assert len(new) == 1, new
        return new[0]

    return _train
