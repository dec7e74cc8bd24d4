"""Multi-process training with ``torch.distributed`` (launched by ``torchrun``).

Every process runs the same ``mtl-train`` command. The pieces here keep them one run:

* ``hydra_overrides`` (before Hydra starts): ranks other than 0 write nothing, neither a
  run directory nor ``.hydra/`` nor a log file; ``setup`` + ``broadcast_object`` then hand
  them rank 0's run directory, so one run directory exists per run.
* ``setup`` joins the process group (backend from ``trainer.backend``) and pins each
  rank to its GPU (``LOCAL_RANK``).
* samplers: ``train_sampler`` shards a per-epoch shuffle so that the global batch of W
  ranks with per-rank batch B is the batch of one process with batch W*B;
  ``ShardSampler`` splits the validation set without padding, so metrics reduced over
  ranks equal the single-process ones.
* ``wrap_ddp`` puts the model in ``DistributedDataParallel``; ``sync_batchnorm`` and
  ``freeze_batchnorm_`` implement ``trainer.batch_norm`` (see the README for the choice).
* collectives: ``GradientAverager``; the others (``all_reduce_mean_``, the hook weighting
  methods use to make what they combine identical on every rank, ``all_reduce_max_``,
  ``broadcast_object``, ``broadcast_state_``) live in ``mtl_cli.utils.collectives`` and are
  re-exported here for the training loop.
* ``name_failing_rank``: the failing rank says who it is; torchrun stops the others.

In a single process every helper is a no-op, so the library code calls them
unconditionally.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler, Sampler

from mtl_cli.engine.environment import resolve_device
from mtl_cli.errors import UserError, one_line
from mtl_cli.utils.collectives import (  # re-exported (__all__): the loop calls distributed.<collective>
    all_reduce_max_,
    all_reduce_mean_,
    broadcast_object,
    broadcast_state_,
    is_active,
)


@dataclass(frozen=True)
class RankInfo:
    """Where this process sits in the job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launch_info() -> RankInfo:
    """The rank layout ``torchrun`` put in the environment."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", 1))
    return RankInfo(
        rank=int(env.get("RANK", 0)),
        world_size=world,
        local_rank=int(env.get("LOCAL_RANK", 0)),
        local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)),
    )


def current() -> RankInfo:
    """This process's rank layout once ``setup`` has run (rank 0 of 1 otherwise)."""
    if not is_active():
        return RankInfo()
    launched = launch_info()
    return RankInfo(dist.get_rank(), dist.get_world_size(), launched.local_rank, launched.local_world_size)


# --------------------------------------------------------------------------- Hydra
# Keys a non-zero rank must not take from the command line: they would make it write.
_QUIET_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.output_subdir")


def hydra_overrides(argv: Sequence[str], info: RankInfo | None = None) -> list[str]:
    """``argv`` (Hydra's overrides) with what this rank needs appended.

    Rank 0 keeps ``argv``: it creates the run directory, ``.hydra/`` and ``train.log``.
    Other ranks point Hydra at a scratch folder removed at exit, save no ``.hydra/``, log
    warnings to the console only, and learn the real run directory from rank 0.
    """
    info = info or launch_info()
    if info.is_main:
        return list(argv)
    scratch = tempfile.mkdtemp(prefix=f"mtl_cli_rank{info.rank}_")
    atexit.register(shutil.rmtree, scratch, True)
    kept = [a for a in argv if a.lstrip("+~").split("=", 1)[0] not in _QUIET_KEYS]
    return [
        *kept,
        f"hydra.run.dir='{scratch}'",
        f"hydra.sweep.dir='{scratch}'",
        "hydra.output_subdir=null",
        "hydra.job_logging.root.level=WARNING",
        "hydra.job_logging.root.handlers=[console]",
    ]


# --------------------------------------------------------------------------- process group
def resolve_backend(choice: str, device: torch.device) -> str:
    """``auto`` -> nccl on CUDA, gloo on CPU; nccl on a CPU device is refused."""
    if choice == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if choice == "nccl" and device.type != "cuda":
        raise UserError("trainer.backend=nccl needs CUDA GPUs; on CPU use trainer.backend=gloo (or auto)")
    return choice


def setup(device_choice: str, backend_choice: str, devices: int | None) -> tuple[RankInfo, torch.device]:
    """Join the torchrun job's process group (once per process) and pick this rank's device.

    Without torchrun this is a single process on ``resolve_device(device_choice)``.
    ``devices`` (``trainer.devices``), when set, must equal the number of processes per
    node that torchrun started.
    """
    info = launch_info()
    if devices is not None and devices != info.local_world_size:
        if info.distributed:
            raise UserError(
                f"trainer.devices={devices} but torchrun started {info.local_world_size} process(es) per node; "
                f"make them equal (torchrun --nproc_per_node={devices} ...) or drop trainer.devices"
            )
        raise UserError(
            f"trainer.devices={devices} needs one process per device: launch with "
            f"torchrun --nproc_per_node={devices} -m mtl_cli.train ... (README: Multi-GPU and multi-node)"
        )
    device = resolve_device(device_choice)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if info.local_rank >= count:
            raise UserError(
                f"rank {info.rank} has LOCAL_RANK {info.local_rank} but this node has {count} GPU(s); "
                f"start at most {count} processes per node (torchrun --nproc_per_node={count})"
            )
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not info.distributed:
        return info, device
    backend = resolve_backend(backend_choice, device)
    if not dist.is_initialized():
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    elif dist.get_backend() != backend:
        raise UserError(
            f"trainer.backend={backend_choice} differs from the backend ({dist.get_backend()}) this process "
            f"group started with; use one backend for every run of a sweep"
        )
    return info, device


def teardown() -> None:
    """Leave the process group (at the end of a successful command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def name_failing_rank(prog: str) -> Iterator[None]:
    """In a multi-process run, report an error as one line naming the failing rank, and exit.

    ``<prog>: error: rank k: <message>`` goes to stderr (exit status 2 for a ``UserError``,
    1 otherwise); the full traceback goes to torchrun's error file, so torchrun's final
    report names this rank as the root cause and shows it. torchrun then stops the other
    ranks, which may be blocked in a collective (they fail or are terminated, not hang).
    In a single process this does nothing.
    """
    info = launch_info()
    if not info.distributed:
        yield
        return
    try:
        yield
    except Exception as exc:
        _record_for_torchrun(exc)
        message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        print(f"{prog}: error: rank {info.rank}: {one_line(message)}", file=sys.stderr, flush=True)
        sys.exit(2 if isinstance(exc, UserError) else 1)


def _record_for_torchrun(exc: BaseException) -> None:
    if os.environ.get("TORCHELASTIC_ERROR_FILE"):
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        ErrorHandler().record_exception(exc)


# --------------------------------------------------------------------------- collectives
class GradientAverager:
    """Averages the gradients of a fixed list of parameters over ranks, in one collective.

    Parameters without a gradient are skipped (they must lack it on every rank). The flat
    communication buffer is allocated once and reused.
    """

    def __init__(self, params: Iterable[nn.Parameter]) -> None:
        self.params = [p for p in params if p.requires_grad]
        self._buffer: Tensor | None = None

    def __call__(self) -> None:
        if not is_active() or not self.params:
            return
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return
        total = sum(g.numel() for g in grads)
        if self._buffer is None or self._buffer.numel() < total or self._buffer.dtype != grads[0].dtype:
            self._buffer = torch.empty(
                sum(p.numel() for p in self.params), dtype=grads[0].dtype, device=grads[0].device
            )
        flat = self._buffer[:total]
        torch.cat([g.reshape(-1) for g in grads], out=flat)
        all_reduce_mean_(flat)
        views = flat.split([g.numel() for g in grads])
        torch._foreach_copy_(grads, [v.view_as(g) for v, g in zip(views, grads)])


# --------------------------------------------------------------------------- data
def train_sampler(dataset: Dataset, seed: int, info: RankInfo | None = None) -> DistributedSampler:
    """Per-epoch shuffled shard of ``dataset`` for this rank (call ``set_epoch`` every epoch).

    Rank r takes positions r, r+W, r+2W, ... of one permutation shared by all ranks, so
    with per-rank batch B the ranks' batches together are exactly the batch of W*B that
    one process would draw; the tail is dropped to a multiple of W.
    """
    info = info or current()
    return DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=True
    )


class ShardSampler(Sampler[int]):
    """Rank r of W gets items r, r+W, r+2W, ...: every item exactly once over all ranks.

    Unlike ``DistributedSampler`` nothing is padded, so metric sums reduced over the
    ranks equal a single-process pass. Ranks may get one batch more than others; that is
    fine for evaluation (no collective per batch).
    """

    def __init__(self, length: int, info: RankInfo | None = None) -> None:
        self.info = info or current()
        self.length = length

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.info.rank, self.length, self.info.world_size))

    def __len__(self) -> int:
        return max(0, math.ceil((self.length - self.info.rank) / self.info.world_size))


# --------------------------------------------------------------------------- model
def sync_batchnorm(model: nn.Module, batch_norm: str, device: torch.device) -> nn.Module:
    """With ``batch_norm="sync"`` inside a process group, BatchNorm layers become ``SyncBatchNorm``.

    The statistics are then those of the global batch (CUDA only: PyTorch has no CPU
    SyncBatchNorm). With ``per_rank`` each rank normalises with its own batch and rank 0's
    running statistics are the ones kept (and evaluated).
    """
    if batch_norm != "sync" or not is_active():
        return model
    if device.type != "cuda":
        raise UserError(
            "trainer.batch_norm=sync needs CUDA GPUs (PyTorch's SyncBatchNorm has no CPU version); "
            "on CPU use trainer.batch_norm=per_rank or frozen"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` inside a process group, else ``model`` itself."""
    if not is_active():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, gradient_as_bucket_view=True)


def freeze_batchnorm_(model: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode: normalise with the running statistics and keep them.

    The affine weights still train. Normalisation then no longer depends on the batch,
    so results do not depend on how a batch is split over ranks or accumulation steps.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


__all__ = [
    "GradientAverager",
    "RankInfo",
    "ShardSampler",
    "all_reduce_max_",
    "all_reduce_mean_",
    "broadcast_object",
    "broadcast_state_",
    "current",
    "freeze_batchnorm_",
    "hydra_overrides",
    "is_active",
    "launch_info",
    "name_failing_rank",
    "resolve_backend",
    "setup",
    "teardown",
    "sync_batchnorm",
    "train_sampler",
    "wrap_ddp",
]
