"""Collectives over the ``torch.distributed`` process group; each is a no-op in a single process.

The library calls them unconditionally: training code (``all_reduce_mean_`` for what a
weighting method combines, ``broadcast_state_`` for rank 0's weights) and metric
accumulators (``all_reduce_sum``, ``all_gather_cat`` over their sufficient statistics, called
only once ``group_ready()``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


def group_ready() -> bool:
    """True once a process group is initialised (of any size)."""
    return dist.is_available() and dist.is_initialized()


def is_active() -> bool:
    """True inside an initialised multi-process group."""
    return group_ready() and dist.get_world_size() > 1


def all_reduce_mean_(tensor: Tensor) -> Tensor:
    """Average ``tensor`` in place over all ranks and return it (identity in one process).

    The hook for weighting methods: call it on every rank, in the same order, on the
    quantity the method combines (the per-task gradient matrix, a Gram matrix, ...),
    so every rank combines the same thing that a single process with the whole global
    batch would. ``tensor`` must be a contiguous floating-point tensor on the training
    device.
    """
    if is_active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(dist.get_world_size())
    return tensor


def all_reduce_max_(tensor: Tensor) -> Tensor:
    """The elementwise maximum over all ranks, in place (identity in one process)."""
    if is_active():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (``obj`` itself in one process)."""
    if not is_active():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def broadcast_state_(module: nn.Module, buffers_only: bool = False) -> None:
    """Copy rank 0's parameters and buffers (or buffers only) into ``module`` on every rank."""
    if not is_active():
        return
    tensors = [] if buffers_only else [p.data for p in module.parameters()]
    tensors += list(module.buffers())
    with torch.no_grad():
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


def comm_device(device: torch.device) -> torch.device:
    """Device on which a collective over a tensor living on ``device`` runs."""
    backend = str(dist.get_backend()).lower()
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    if backend == "gloo":
        return torch.device("cpu")
    return device  # mixed ("cpu:gloo,cuda:nccl"), mpi, ...: keep where it is


def all_reduce_sum(t: Tensor) -> Tensor:
    """The sum of ``t`` over all ranks as a new tensor on ``t``'s device; needs ``group_ready()``.

    Runs on the backend's device (CPU for gloo, the current GPU for nccl) whatever device ``t`` is on.
    """
    dev = comm_device(t.device)
    x = t.to(dev).contiguous()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x.to(t.device)


def all_gather_cat(t: Tensor) -> Tensor:
    """Concatenate ``t`` (variable first dimension) over all ranks, in rank order; needs ``group_ready()``."""
    world = dist.get_world_size()
    dev = comm_device(t.device)
    x = t.to(dev).contiguous()
    n = torch.tensor([x.shape[0]], dtype=torch.int64, device=dev)
    sizes_t = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes_t, n)
    sizes = [int(s.item()) for s in sizes_t]
    max_n = max(sizes)
    if max_n == 0:
        return t
    if x.shape[0] < max_n:
        pad = x.new_zeros((max_n - x.shape[0], *x.shape[1:]))
        x = torch.cat([x, pad], dim=0)
    out = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(out, x)
    return torch.cat([o[:s] for o, s in zip(out, sizes)], dim=0).to(t.device)
