"""Packages: every ``mtl_cli`` package found, plus the top-level ``configs/`` folder shipped as ``mtl_cli.configs``.

pyproject.toml holds the rest of the metadata; a TOML list cannot add a mapped package to discovered ones.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mtl_cli", "mtl_cli.*"]), "mtl_cli.configs"],
    package_dir={"mtl_cli.configs": "configs"},
)
