"""Hydra config groups (``train.yaml``, ``eval.yaml`` and one folder per group), shipped as ``mtl_cli.configs``."""
