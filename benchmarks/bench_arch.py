"""Sharing architectures side by side: parameters and training step time on one config.

Every architecture trains on the identical batches with the mtl_cli loop (same loss,
weighting and optimiser); rounds alternate between the architectures so machine noise
hits all alike. Prints the parameter counts (total, shared, per task), the time per
optimiser step (median, min and max over the rounds) and its ratio to shared_layers (the
default), of the medians and of the minima (the least disturbed rounds: on a shared
machine the more stable of the two).

    python benchmarks/bench_arch.py                           # default config, cls+seg
    python benchmarks/bench_arch.py --overrides task=cls+seg+depth backbone=resnet18
    python benchmarks/bench_arch.py --archs shared_layers mtan --extra relation=learned
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from hydra import compose, initialize_config_dir
from speed_config import FULL_SIZE
from torch.utils.data import DataLoader

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.data import MultiTaskCollate, build_datasets
from mtl_cli.engine.build import build_tasks, build_trainer
from mtl_cli.engine.environment import resolve_device
from mtl_cli.engine.trainer import Trainer
from mtl_cli.models import ARCHITECTURES


def make_trainer(cfg, loader: DataLoader) -> tuple[Trainer, dict[str, int]]:
    """A trainer for ``cfg``'s model on ``loader``, and the model's parameter counts."""
    cfg.data.num_train, cfg.data.num_val = loader.batch_size, 1  # its own data is not used
    trainer = build_trainer(cfg)
    trainer.train_loader = loader
    return trainer, trainer.model.parameter_counts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for every run, e.g. task=cls+seg")
    parser.add_argument("--archs", nargs="*", default=list(ARCHITECTURES), help="architectures to compare")
    parser.add_argument("--extra", nargs="*", default=[], help="also time shared_layers with this override")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per architecture (after one warm-up)")
    args = parser.parse_args()

    register_configs()
    variants = {name: [f"arch={name}"] for name in args.archs}
    variants.update({f"shared_layers {extra}": ["arch=shared_layers", extra] for extra in args.extra})
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        configs = {
            name: validate(compose("train", overrides=["trainer.progress=false", FULL_SIZE, *args.overrides, *extra]))
            for name, extra in variants.items()
        }
    first = next(iter(configs.values()))
    batch_size = first.trainer.batch_size
    device = resolve_device(first.trainer.device.value)
    tasks = build_tasks(first)
    first.data.num_train = args.steps * batch_size  # generate only the images the rounds use
    train_set, _ = build_datasets(first.data, [t.name for t in tasks])
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=False, collate_fn=MultiTaskCollate(tasks))

    trainers, counts, times = {}, {}, {name: [] for name in configs}
    for name, cfg in configs.items():
        trainers[name], counts[name] = make_trainer(cfg, loader)

    def step_ms(trainer: Trainer) -> float:
        start = time.perf_counter()
        trainer.train_epoch(1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return 1000 * (time.perf_counter() - start) / args.steps

    for trainer in trainers.values():  # warm-up
        step_ms(trainer)
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            times[name].append(step_ms(trainer))

    names = [t.name for t in tasks]
    baseline = times.get("shared_layers", next(iter(times.values())))
    print(
        f"config: {' '.join(args.overrides) or '(defaults)'}; device {device}; batch {batch_size}; "
        f"image {first.data.image_size}px; {args.rounds} rounds x {args.steps} steps"
    )
    header = f"{'architecture':<34}{'params':>11}{'shared':>11}" + "".join(f"{n:>10}" for n in names)
    print(header + f"{'ms/step':>10}{'min':>8}{'max':>8}{'ratio':>8}{'ratio(min)':>12}")
    for name, values in times.items():
        c = counts[name]
        median = statistics.median(values)
        print(
            f"{name:<34}{c['total']:>11,}{c['shared']:>11,}"
            + "".join(f"{c[n]:>10,}" for n in names)
            + f"{median:>10.1f}{min(values):>8.1f}{max(values):>8.1f}"
            + f"{median / statistics.median(baseline):>8.2f}{min(values) / min(baseline):>12.2f}"
        )
    print("ratio: median ms/step / shared_layers'; ratio(min): the same for the fastest rounds")


if __name__ == "__main__":
    main()
