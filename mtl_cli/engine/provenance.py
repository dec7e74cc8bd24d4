"""What a run needs to be reproduced: command line, package and library versions, git commit."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import mtl_cli

# Distributions whose versions change results or behaviour; absent ones are skipped.
LIBRARIES = (
    "torch",
    "torchvision",
    "hydra-core",
    "omegaconf",
    "numpy",
    "tqdm",
    "matplotlib",
    "pillow",
    "hydra-optuna-sweeper",
    "optuna",
    "hydra-joblib-launcher",
    "hydra-submitit-launcher",
)


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str]:
    """``{distribution: version}`` for every installed distribution in ``names``."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_record(source_dir: Path | None = None) -> dict[str, Any] | None:
    """Commit and dirty flag of the checkout mtl_cli is imported from; ``None`` outside a checkout."""
    root = Path(mtl_cli.__file__).resolve().parent.parent if source_dir is None else source_dir
    if not (root / ".git").exists():
        return None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty, "checkout": str(root)}


def environment_record() -> dict[str, Any]:
    """Package version, library versions, Python, platform, accelerator and git commit."""
    record: dict[str, Any] = {
        "mtl_cli": mtl_cli.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {**library_versions(), "torch": torch.__version__},  # with its CUDA build tag
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "git": git_record(),
    }
    if torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name(0)
    return record
