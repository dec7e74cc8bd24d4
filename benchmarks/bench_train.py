"""Training throughput: the mtl_cli loop vs a hand-written PyTorch loop, side by side.

Both loops train the identical model (same initial weights) on the identical batches
with the same loss (sum of the task losses), optimiser, precision and memory layout;
rounds alternate between the two so machine noise hits both alike. Prints images/s for
each, the ratio ours/plain and the peak memory.

    python benchmarks/bench_train.py                       # default config, cls+seg, CPU
    python benchmarks/bench_train.py --overrides task=cls+seg+depth backbone=resnet18
    # GPU: ResNet-50 trunk, 3 dense tasks, 288x384 input, bf16 autocast, channels-last
    python benchmarks/bench_train.py --device cuda --precision bf16 --channels-last \\
        --crop 288 384 --steps 20 --overrides task=seg+depth+normals backbone=resnet50 \\
        data.image_size=384 trainer.batch_size=16
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from speed_config import FULL_SIZE
from torch.utils.data import DataLoader, Dataset, Subset

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine.build import build_trainer
from mtl_cli.engine.environment import peak_memory_mb
from mtl_cli.engine.precision import Precision
from mtl_cli.engine.speed import memory_format


class CenterCrop(Dataset):
    """Crops images and dense targets (every tensor ending in the square render size) to ``height x width``."""

    def __init__(self, dataset: Dataset, height: int, width: int) -> None:
        self.dataset, self.height, self.width = dataset, height, width

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {key: self._crop(value) for key, value in self.dataset[index].items()}

    def _crop(self, value: Any) -> Any:
        if not isinstance(value, torch.Tensor) or value.dim() < 2:
            return value
        h, w = value.shape[-2:]
        if h < self.height or w < self.width:
            raise SystemExit(f"--crop {self.height} {self.width} is larger than data.image_size={h}")
        top, left = (h - self.height) // 2, (w - self.width) // 2
        return value[..., top : top + self.height, left : left + self.width]


def plain_epoch(model, optimizer, loader, tasks, device, precision: Precision, layout) -> int:
    """The reference: forward (autocast), sum of task losses, backward (scaled), step. Returns images seen."""
    model.train()
    seen = 0
    scaler = precision.scaler
    for batch in loader:
        images = batch["image"].to(device, non_blocking=True, memory_format=layout)
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            preds = model(images)
            loss = sum(task.loss(preds[task.name], batch[task.name].to(device, non_blocking=True)) for task in tasks)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        seen += images.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides, e.g. task=cls+seg")
    parser.add_argument("--steps", type=int, default=30, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per loop (after one warm-up)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["32", "bf16", "16"], default="32")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="channels-last memory layout in both loops (default: the config's trainer.channels_last)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (both loops)")
    parser.add_argument("--crop", nargs=2, type=int, metavar=("H", "W"), help="train on H x W crops of the scenes")
    args = parser.parse_args()

    speed = [
        f"trainer.device={args.device}",
        f"trainer.precision={args.precision}",
        f"trainer.compile={str(args.compile).lower()}",
    ]
    if args.channels_last is not None:
        speed.append(f"trainer.channels_last={str(args.channels_last).lower()}")
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = validate(compose("train", overrides=["trainer.progress=false", FULL_SIZE, *speed, *args.overrides]))
    batch_size = cfg.trainer.batch_size
    cfg.data.num_train = args.steps * batch_size  # render only what the rounds use
    cfg.data.num_val = batch_size
    cfg.trainer.epochs, cfg.trainer.max_steps = 1, None
    trainer = build_trainer(cfg)
    source = trainer.train_loader.dataset  # type: ignore[attr-defined]
    dataset: Dataset = Subset(source, range(args.steps * batch_size))
    if args.crop:
        dataset = CenterCrop(dataset, *args.crop)
    device = trainer.device
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=trainer.train_loader.collate_fn,  # type: ignore[attr-defined]
        pin_memory=device.type == "cuda",
    )

    layout = memory_format(cfg.trainer.channels_last)
    plain_model = copy.deepcopy(trainer.model)
    plain_optimizer = type(trainer.optimizer)(plain_model.parameters(), **trainer.optimizer.defaults)
    plain_forward = torch.compile(plain_model) if cfg.trainer.compile else plain_model
    plain_precision = Precision.from_config(cfg.trainer.precision, device)
    trainer.train_loader = loader  # the timed batches, as the plain loop sees them

    def ours() -> float:
        start = time.perf_counter()
        trainer.train_epoch(1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return len(dataset) / (time.perf_counter() - start)  # type: ignore[arg-type]

    def plain() -> float:
        start = time.perf_counter()
        seen = plain_epoch(plain_forward, plain_optimizer, loader, trainer.tasks, device, plain_precision, layout)
        return seen / (time.perf_counter() - start)

    ours(), plain()  # warm-up (and compilation)
    ours_rates, plain_rates = [], []
    for _ in range(args.rounds):
        ours_rates.append(ours())
        plain_rates.append(plain())
    o, p = statistics.median(ours_rates), statistics.median(plain_rates)
    size = "x".join(map(str, args.crop)) if args.crop else f"{cfg.data.image_size}x{cfg.data.image_size}"
    print(
        f"config: {' '.join(args.overrides) or '(defaults)'}; device {device}; batch {batch_size}; "
        f"input {size}; precision {cfg.trainer.precision}; channels_last {cfg.trainer.channels_last}; "
        f"compile {cfg.trainer.compile}; {args.rounds} rounds x {args.steps} steps"
    )
    print(f"{'loop':<10}{'images/s (median)':>20}{'min':>10}{'max':>10}")
    print(f"{'mtl_cli':<10}{o:>20.1f}{min(ours_rates):>10.1f}{max(ours_rates):>10.1f}")
    print(f"{'plain':<10}{p:>20.1f}{min(plain_rates):>10.1f}{max(plain_rates):>10.1f}")
    print(f"ratio mtl_cli/plain: {o / p:.3f}")
    print(f"peak memory (both loops, one process): {peak_memory_mb(device):.0f} MiB")


if __name__ == "__main__":
    main()
