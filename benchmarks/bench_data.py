"""Data loading throughput per dataset vs the training step throughput of the default model.

For every dataset a fixture is written in the real on-disk format at the real resolution
(NYUv2 288x384 float64 .npy, Cityscapes 128x256, CelebA 218x178 JPEGs resized to 64x64,
MultiMNIST 28x28 generated, a user folder of 128x128 PNG + .npy labels), then measured,
side by side in one run:

* loader: samples/s of the training DataLoader exactly as ``mtl-train`` builds it (joint
  augmentation on, collate, workers, pinned memory on CUDA), over several epochs after a
  warm-up epoch, for each ``--workers`` setting;
* train: samples/s of the training step (forward, losses, backward, optimiser step) of the
  default model (small_cnn, shared layers, EW) on the same tasks and resolution, fed from
  batches already in memory on the device.

The loader keeps the step fed when loader/train > 1.

    python benchmarks/bench_data.py                     # all datasets
    python benchmarks/bench_data.py --datasets nyuv2 --workers 0 4 --batch 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "data")]

from data_layouts import write_celeba, write_cityscapes, write_folder, write_nyuv2  # noqa: E402
from speed_config import FULL_SIZE  # noqa: E402

from mtl_cli.config import CONFIG_DIR, register_configs, validate  # noqa: E402
from mtl_cli.engine.build import build_trainer  # noqa: E402
from mtl_cli.engine.trainer import Trainer  # noqa: E402

AUGMENT = ["data.augment.scale=[1.0,1.5]"]
FOLDER_CLASSES = ["data.tasks.cls.num_classes=3", "data.tasks.seg.num_classes=4", "data.tasks.multilabel.num_classes=3"]

# name -> (write the fixture with n training samples under a folder -> overrides)
DATASETS: dict[str, Callable[[Path, int], list[str]]] = {
    "nyuv2": lambda d, n: [
        "data=nyuv2",
        "task=seg+depth+normals",
        *AUGMENT,
        f"data.root={write_nyuv2(d, n_train=n, n_val=2, size=(288, 384))}",
    ],
    "cityscapes": lambda d, n: [
        "data=cityscapes",
        "task=seg+depth",
        *AUGMENT,
        f"data.root={write_cityscapes(d, n_train=n, n_val=2, size=(128, 256))}",
    ],
    "celeba": lambda d, n: [
        "data=celeba",
        "task=attributes",
        "data.augment.hflip=true",
        f"data.root={write_celeba(d, n=(n * 5 + 2) // 3)}",
    ],
    "multimnist": lambda d, n: ["data=multimnist", "task=left+mask+right", f"data.num_train={n}", "data.num_val=8"],
    "folder": lambda d, n: [
        "data=folder",
        "task=cls+seg+depth+normals+edges+multilabel",
        *FOLDER_CLASSES,
        *AUGMENT,
        "data.augment.hflip=true",
        f"data.root={write_folder(d, n_train=n, n_val=2, size=(128, 128))}",
    ],
}


def loader_rate(loader, epochs: int) -> float:
    """Samples/s over ``epochs`` passes, after one warm-up pass (worker start-up, page cache)."""
    for _ in loader:
        pass
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            seen += batch["image"].shape[0]
    return seen / (time.perf_counter() - start)


def train_rate(trainer: Trainer, batches: list, rounds: int) -> float:
    """Median samples/s of the training step of ``trainer`` on in-memory ``batches``."""
    trainer.train_loader = batches
    trainer.train_epoch(1)  # warm-up
    rates = []
    for _ in range(rounds):
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_epoch(1)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(sum(b["image"].shape[0] for b in batches) / (time.perf_counter() - start))
    return statistics.median(rates)


def to_device(batch: dict, device: torch.device) -> dict:
    out = {}
    for key, value in batch.items():
        out[key] = to_device(value, device) if isinstance(value, dict) else value.to(device)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--samples", type=int, default=32, help="training samples per fixture")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 2], help="DataLoader worker counts to measure")
    parser.add_argument("--epochs", type=int, default=3, help="timed loader passes")
    parser.add_argument("--rounds", type=int, default=3, help="timed training passes")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads of the main process (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    register_configs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for name in args.datasets:
            overrides = DATASETS[name](Path(tmp) / name, args.samples)
            common = [
                *overrides,
                FULL_SIZE,
                f"trainer.batch_size={args.batch}",
                f"trainer.device={args.device}",
                "trainer.progress=false",
                "trainer.epochs=1",
                "trainer.log_every_n_steps=1000000000",
            ]
            loaders = {}
            for workers in args.workers:
                cfg = validate(compose("train", overrides=[*common, f"trainer.num_workers={workers}"]))
                trainer = build_trainer(cfg)
                loaders[workers] = loader_rate(trainer.train_loader, args.epochs)
            batches = [to_device(b, trainer.device) for b in trainer.train_loader]
            step = train_rate(trainer, batches, args.rounds)
            size = "x".join(str(s) for s in batches[0]["image"].shape[-2:])
            rows.append((name, size, "+".join(t.name for t in trainer.tasks)[:28], loaders, step))
            del trainer

    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    print(
        f"device {device}; batch {args.batch}; {args.samples} training samples per dataset; "
        f"torch threads {torch.get_num_threads()}; model: default (small_cnn width 32, shared_layers, ew)"
    )
    head = "".join(f"{f'loader w={w}':>13}" for w in args.workers)
    print(f"{'dataset':<12}{'size':>9}  {'tasks':<30}{head}{'train step':>12}{'best/train':>12}")
    for name, size, tasks, loaders, step in rows:
        cells = "".join(f"{loaders[w]:>13.1f}" for w in args.workers)
        print(f"{name:<12}{size:>9}  {tasks:<30}{cells}{step:>12.1f}{max(loaders.values()) / step:>12.2f}")
    print("(samples/s; best/train > 1: loading keeps up with training)")


if __name__ == "__main__":
    main()
