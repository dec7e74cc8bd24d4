"""Throughput settings: the module the training step runs, and DataLoader options.

``training_module`` turns the model into what the training step calls: channels-last
memory layout, ``DistributedDataParallel`` inside a process group, ``torch.compile``.
The plain model stays the one that is evaluated and checkpointed (its ``state_dict`` has
no ``module.`` / ``_orig_mod.`` prefixes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mtl_cli.engine import distributed


def memory_format(channels_last: bool) -> torch.memory_format:
    """The layout images and weights are kept in."""
    return torch.channels_last if channels_last else torch.contiguous_format


def training_module(
    model: nn.Module, device: torch.device, *, channels_last: bool, batch_norm: str, compile: bool
) -> nn.Module:
    """``model`` prepared for training steps: layout, DDP (in a process group), compile.

    Compiling the DDP module's inner model lets Dynamo split graphs at DDP's gradient
    buckets, so the all-reduce still overlaps the backward pass.
    """
    model.to(memory_format=memory_format(channels_last))
    model = distributed.sync_batchnorm(model, batch_norm, device)  # in place for a MultiTaskModel
    inner = torch.compile(model) if compile else model
    return distributed.wrap_ddp(inner, device)


def loader_options(num_workers: int, prefetch_factor: int, device: torch.device) -> dict[str, Any]:
    """DataLoader keyword arguments for throughput.

    Pinned host memory on CUDA (so ``.to(device, non_blocking=True)`` overlaps the copy
    with compute); with workers, keep them alive across epochs and prefetch
    ``prefetch_factor`` batches per worker.
    """
    options: dict[str, Any] = {"num_workers": num_workers, "pin_memory": device.type == "cuda"}
    if num_workers > 0:
        options.update(persistent_workers=True, prefetch_factor=prefetch_factor)
    return options
