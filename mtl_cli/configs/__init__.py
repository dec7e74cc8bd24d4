"""Hydra config groups shipped with the package (see config.yaml)."""
