"""Checkpoints of untrained models for inference tests, written the way training writes them."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf

from mtl_cli.config import CONFIG_DIR, validate
from mtl_cli.engine.build import build_tasks
from mtl_cli.engine.checkpoint import save_checkpoint
from mtl_cli.models import build_model

ALL_TASKS = ("cls", "seg", "depth", "normals", "edges", "multilabel", "det")


def _arch(arch: str, tasks) -> dict:
    """The arch node; ``grouped`` gets two groups (the dense tasks apart from the others)."""
    if arch != "grouped":
        return {"name": arch}
    dense = [t for t in tasks if t in ("seg", "depth", "normals", "edges")]
    rest = [t for t in tasks if t not in dense]
    return {"name": arch, "groups": [group for group in (rest, dense) if group]}


def write_checkpoint(
    path: Path, arch: str = "shared_layers", tasks=ALL_TASKS, image_size: int = 16, width: int = 4
) -> Path:
    """A checkpoint of a tiny small_cnn model on shapes data, with random weights and BatchNorm statistics."""
    data = yaml.safe_load((CONFIG_DIR / "data" / "shapes.yaml").read_text())
    data["image_size"] = image_size
    cfg = validate(
        OmegaConf.create(
            {
                "tasks": {name: {"kind": name, "head_channels": 8} for name in tasks},
                "data": data,
                "backbone": {"name": "small_cnn", "width": width},
                "arch": _arch(arch, tasks),
            }
        )
    )
    torch.manual_seed(0)
    model = build_model(cfg, build_tasks(cfg))
    for module in model.modules():  # non-trivial running statistics, so eval mode differs from train mode
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    save_checkpoint(path, {"model": model.state_dict(), "config": OmegaConf.to_yaml(cfg)})
    return path
