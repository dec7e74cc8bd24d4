"""mtl_cli: config-driven multi-task learning for computer vision on PyTorch."""

__version__ = "0.1.0"
