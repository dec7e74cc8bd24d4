"""Training throughput: the mtl_cli loop vs a hand-written PyTorch loop, side by side.

Both loops train the identical model (same initial weights) on the identical batches
with the same loss (sum of the task losses) and optimiser; rounds alternate between the
two so machine noise hits both alike. Prints images/s for each and the ratio ours/plain.

    python benchmarks/bench_train.py                       # default config, cls+seg
    python benchmarks/bench_train.py --overrides task=cls+seg+depth backbone=resnet18
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from hydra import compose, initialize_config_module
from torch.utils.data import DataLoader, Subset

from mtl_cli.config import register_configs, validate
from mtl_cli.engine.run import build_components
from mtl_cli.engine.trainer import Trainer, TrainerSettings


def plain_epoch(model, optimizer, loader, tasks, device) -> int:
    """The reference: forward, sum of task losses, backward, step. Returns images seen."""
    model.train()
    seen = 0
    for batch in loader:
        images = batch["image"].to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        preds = model(images)
        loss = sum(task.loss(preds[task.name], batch[task.name].to(device, non_blocking=True)) for task in tasks)
        loss.backward()
        optimizer.step()
        seen += images.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides, e.g. task=cls+seg")
    parser.add_argument("--steps", type=int, default=30, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per loop (after one warm-up)")
    args = parser.parse_args()

    register_configs()
    with initialize_config_module("mtl_cli.configs", version_base="1.3"):
        cfg = validate(compose("train", overrides=["trainer.progress=false", *args.overrides]))
    parts = build_components(cfg)
    batch_size = cfg.trainer.batch_size
    subset = Subset(parts.train_loader.dataset, range(args.steps * batch_size))
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False, collate_fn=parts.train_loader.collate_fn)

    plain_model = copy.deepcopy(parts.model)
    plain_optimizer = type(parts.optimizer)(plain_model.parameters(), **parts.optimizer.defaults)
    settings = TrainerSettings(epochs=1, seed=0, progress=False)
    trainer = Trainer(
        parts.model, parts.tasks, parts.weighting, parts.optimizer, None, loader, loader, parts.device, settings
    )

    def ours() -> float:
        start = time.perf_counter()
        trainer.train_epoch(1)
        if parts.device.type == "cuda":
            torch.cuda.synchronize()
        return len(subset) / (time.perf_counter() - start)

    def plain() -> float:
        start = time.perf_counter()
        seen = plain_epoch(plain_model, plain_optimizer, loader, parts.tasks, parts.device)
        return seen / (time.perf_counter() - start)

    ours(), plain()  # warm-up
    ours_rates, plain_rates = [], []
    for _ in range(args.rounds):
        ours_rates.append(ours())
        plain_rates.append(plain())
    o, p = statistics.median(ours_rates), statistics.median(plain_rates)
    print(f"config: {' '.join(args.overrides) or '(defaults)'}; device {parts.device}; batch {batch_size}; "
          f"{args.rounds} rounds x {args.steps} steps")
    print(f"{'loop':<10}{'images/s (median)':>20}{'min':>10}{'max':>10}")
    print(f"{'mtl_cli':<10}{o:>20.1f}{min(ours_rates):>10.1f}{max(ours_rates):>10.1f}")
    print(f"{'plain':<10}{p:>20.1f}{min(plain_rates):>10.1f}{max(plain_rates):>10.1f}")
    print(f"ratio mtl_cli/plain: {o / p:.3f}")


if __name__ == "__main__":
    main()
