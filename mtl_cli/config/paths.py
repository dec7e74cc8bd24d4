"""Where the YAML config groups are: ``configs/`` of a checkout, or ``mtl_cli/configs`` of an install.

A wheel ships the top-level ``configs/`` folder as the package data ``mtl_cli/configs``
(``package-dir`` in pyproject.toml); a checkout on ``PYTHONPATH`` or an editable install
reads ``configs/`` beside the ``mtl_cli`` folder.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def find_config_dir() -> Path:
    """The folder holding ``train.yaml`` and one folder per config group."""
    for candidate in (_PACKAGE / "configs", _PACKAGE.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"mtl_cli's configs/ folder (with train.yaml) is missing beside {_PACKAGE}; reinstall mtl_cli"
    )


CONFIG_DIR = find_config_dir()
