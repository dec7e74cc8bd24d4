"""Cost of every weighting method and mode: ms per training step vs a plain PyTorch step.

Every configuration trains its own copy of the same model (same initial weights) on the
same batches, held in memory so data loading is not measured, through the real
``Trainer.train_epoch``; the reference is a hand-written step with loss = sum of the
task losses. Each timed epoch of a method directly follows a timed plain epoch, and the
ratio reported is the median over rounds of those paired ratios, so a change in machine
load between configurations cancels out.
Two extra rows measure the per-task gradient mechanism: k separate
``torch.autograd.grad`` calls (the library's choice) against one batched call
(``is_grads_batched=True``).

    python benchmarks/bench_weighting.py                  # cls+seg, small CNN, CPU, 1 thread
    python benchmarks/bench_weighting.py --threads 2 --overrides backbone.width=32
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from bench_train import plain_epoch
from hydra import compose, initialize_config_dir
from speed_config import FULL_SIZE

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine.build import build_trainer
from mtl_cli.engine.optim import build_optimizer
from mtl_cli.engine.precision import Precision
from mtl_cli.engine.speed import memory_format
from mtl_cli.weighting import METHODS, GradientWeighting
from mtl_cli.weighting.gradients import GradientOptions

DEFAULTS = ["task=cls+seg", "data.num_train=512", "data.image_size=64", "backbone.width=16", "trainer.batch_size=32"]
GRADIENT_MODES = ("params", "features")


@dataclass
class Row:
    """One configuration: how to run one timed epoch, and its measurements (ms per step)."""

    method: str
    mode: str
    kind: str
    run: Callable[[], None]
    times: list[float] = field(default_factory=list)


def target(row: Row) -> float:
    """The issue's cost target for this row (ratio to the plain step)."""
    if row.method == "nash_mtl":
        return 2.0
    if row.kind == "loss":
        return 1.2 if row.method == "famo" else 1.05
    return 1.3 if row.mode.startswith("features") else 1.6


def modes(name: str) -> list[tuple[str, dict[str, Any]]]:
    """(mode label, weighting options) for every mode the method supports."""
    if not issubclass(METHODS[name].options_class, GradientOptions):
        return [("-", {})]
    if name == "db_mtl":
        return [("params", {"grad_on": "params"})]
    return [(on, {"grad_on": on}) for on in GRADIENT_MODES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides on top of the defaults")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: stable timings)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    register_configs()
    common = [*DEFAULTS, "trainer.progress=false", FULL_SIZE, "trainer.epochs=1", *args.overrides]

    def config(*overrides: str):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return validate(compose("train", overrides=[*common, *overrides]))

    cfg = config()
    reference = build_trainer(cfg)
    batches = [b for _, b in zip(range(args.steps), reference.train_loader)]
    device, tasks = reference.device, reference.tasks

    def trainer_row(name: str, mode: str, options: dict[str, Any], batched: bool = False) -> Row:
        """A trainer of method ``name`` (same initial model: built with the same seed) on ``batches``."""
        trainer = build_trainer(config(f"weighting={name}", *(f"weighting.{k}={v}" for k, v in options.items())))
        trainer.train_loader = batches
        method = trainer.weighting
        if batched:
            method.gradients.batched = True  # type: ignore[attr-defined]
        kind = "gradient" if isinstance(method, GradientWeighting) or name == "gradnorm" else "loss"
        return Row(name, mode, kind, lambda: trainer.train_epoch(1))

    plain_model = copy.deepcopy(reference.model)
    plain_optimizer = build_optimizer(cfg, [{"params": list(plain_model.parameters())}])
    precision, layout = Precision(device), memory_format(False)  # fp32, default layout (both loops)
    rows = [
        Row(
            "plain PyTorch",
            "-",
            "-",
            lambda: plain_epoch(plain_model, plain_optimizer, batches, tasks, device, precision, layout),
        )
    ]
    for name in dict.fromkeys(METHODS):
        for mode, options in modes(name):
            rows.append(trainer_row(name, mode, options))
    for on in GRADIENT_MODES:
        rows.append(trainer_row("pcgrad", f"{on}, batched", {"grad_on": on}, batched=True))

    def timed(row: Row) -> float:
        start = time.perf_counter()
        row.run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1000 / args.steps

    for row in rows:  # warm-up
        timed(row)
    plain, others = rows[0], rows[1:]
    ratios: dict[int, list[float]] = {id(row): [] for row in others}
    for _ in range(args.rounds):
        for row in others:  # each row right after its own plain epoch: load drift cancels in the ratio
            reference = timed(plain)
            plain.times.append(reference)
            row.times.append(timed(row))
            ratios[id(row)].append(row.times[-1] / reference)

    print(
        f"config: {' '.join([*DEFAULTS, *args.overrides])}; device {device}; threads {torch.get_num_threads()}; "
        f"{args.rounds} rounds x {args.steps} steps; ratio = median over rounds of (row / the plain epoch before it)"
    )
    header = f"{'method':<14}{'mode':<19}{'kind':<10}{'ms/step':>9}{'ratio':>8}{'target':>8}"
    print(header)
    print("-" * len(header))
    print(f"{plain.method:<14}{plain.mode:<19}{plain.kind:<10}{statistics.median(plain.times):>9.1f}{1.0:>8.2f}")
    for row in others:
        ratio = statistics.median(ratios[id(row)])
        comparison = "batched" in row.mode  # the per-task gradient mechanism the library does not use
        goal = "-" if comparison else f"{target(row):.2f}"
        flag = "" if comparison or ratio <= target(row) else "  over"
        print(
            f"{row.method:<14}{row.mode:<19}{row.kind:<10}{statistics.median(row.times):>9.1f}"
            f"{ratio:>8.2f}{goal:>8}{flag}"
        )


if __name__ == "__main__":
    main()
