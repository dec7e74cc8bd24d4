"""Cost of the experiment trackers to the training loop, as % of training time at log_every_n_steps.

Each tracker is started in a temp dir (MLflow's default local sqlite store, TensorBoard event
files, W&B offline) through ``build_loggers``, as a run would. Two measures, side by side:

- caller ms/call: what one ``log_scalars`` call costs the training thread (the guard hands the
  work to a background thread), and background ms/call: how long that thread needs per call;
- loop overhead: training steps of a tiny conv net (forward + backward + SGD on a 64px batch of
  32, 2 heads) with ``log_scalars`` every ``--every`` steps, against the same steps with no
  tracker, interleaved in rounds and compared by the median of paired ratios, so drifting
  machine load cancels out. This includes the background thread competing for the CPU.

With ``--loop`` it measures the real thing instead: the mtl_cli training loop (``build_trainer``
on the default config plus ``--overrides``) with ``logger=[csv,tensorboard,mlflow,wandb]``,
training epochs with the tracker callback in the loop's callbacks and without it (which is
``logger=[csv]``), alternated in rounds; the step time of each and the median paired overhead.

    python benchmarks/bench_loggers.py                    # CPU, 1 thread, log every 10 steps
    python benchmarks/bench_loggers.py --steps 100 --rounds 5 --threads 2
    python benchmarks/bench_loggers.py --loop --steps 40 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from speed_config import FULL_SIZE
from torch import nn

from mtl_cli.loggers import GuardedLogger, RunInfo, build_loggers, logger_config

ALL = "logger=[csv,tensorboard,mlflow,wandb]"

TRACKERS = ("tensorboard", "mlflow", "wandb")


class TinyNet(nn.Module):
    """A small two-task conv net: a shared trunk, a 10-way classifier and a 1x1 seg head."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.cls = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10))
        self.seg = nn.Conv2d(2 * width, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(x)
        return self.cls(features), self.seg(features)


def make_step(batch: int, size: int):
    """A closure running one training step; returns the two task losses as floats every call."""
    torch.manual_seed(0)
    model = TinyNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    images = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, 10, (batch,))
    masks = torch.randint(0, 4, (batch, size // 2, size // 2))

    def step() -> tuple[torch.Tensor, torch.Tensor]:
        logits, seg = model(images)
        cls_loss = nn.functional.cross_entropy(logits, labels)
        seg_loss = nn.functional.cross_entropy(seg, masks)
        optimizer.zero_grad(set_to_none=True)
        (cls_loss + seg_loss).backward()
        optimizer.step()
        return cls_loss.detach(), seg_loss.detach()

    return step


def values(step: int, losses: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """What the loop logs every n steps for two tasks: losses, total, weights, learning rate."""
    cls_loss, seg_loss = float(losses[0]), float(losses[1])
    return {
        "train/loss": cls_loss + seg_loss,
        "train/cls_loss": cls_loss,
        "train/seg_loss": seg_loss,
        "weight/cls": 1.0,
        "weight/seg": 1.0,
        "lr": 0.01,
    }


def started(names: list[str], root: Path, tag: str) -> list[GuardedLogger]:
    """Trackers ``names`` built and started on a fresh run dir below ``root``."""
    run_dir = root / "outputs" / tag
    run_dir.mkdir(parents=True)
    loggers = build_loggers(logger_config(["csv", *names]), is_main=True)
    for logger in loggers:
        logger.start(RunInfo(run_dir=run_dir, run_name=tag, tracking_root=root))
    return loggers


def train(step, steps: int, every: int, loggers: list[GuardedLogger]) -> float:
    """Seconds for ``steps`` training steps, logging to ``loggers`` every ``every`` steps."""
    start = time.perf_counter()
    for i in range(1, steps + 1):
        losses = step()
        if i % every == 0:
            logged = values(i, losses)
            for logger in loggers:
                logger.log_scalars(logged, i)
    return time.perf_counter() - start


def call_costs(logger: GuardedLogger, calls: int) -> tuple[float, float]:
    """(ms per call on the caller's thread, ms per call of background work until flushed)."""
    payload = {"train/loss": 1.0, "train/cls_loss": 0.5, "train/seg_loss": 0.5, "weight/cls": 1.0, "lr": 0.01}
    start = time.perf_counter()
    for i in range(calls):
        logger.log_scalars(payload, 100_000 + i)
    caller = time.perf_counter() - start
    logger.flush()
    total = time.perf_counter() - start
    return 1000 * caller / calls, 1000 * total / calls


def loop_overhead(steps: int, rounds: int, overrides: list[str], root: Path) -> None:
    """The mtl_cli loop's step time with every tracker against ``logger=[csv]``, in paired rounds."""
    from hydra import compose, initialize_config_dir

    from mtl_cli.config import CONFIG_DIR, register_configs, validate
    from mtl_cli.engine.build import build_trainer
    from mtl_cli.engine.callbacks import TrackerLogging

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = validate(compose("train", overrides=["trainer.progress=false", FULL_SIZE, ALL, *overrides]))
    cfg.data.num_train, cfg.data.num_val = steps * cfg.trainer.batch_size, cfg.trainer.batch_size
    trainer = build_trainer(cfg, root / "outputs" / "loop")
    tracked = list(trainer.callbacks)
    plain = [cb for cb in tracked if not isinstance(cb, TrackerLogging)]
    assert len(plain) == len(tracked) - 1, "the tracker callback is not in the loop"
    for callback in tracked:
        callback.on_fit_start(trainer)

    def epoch_ms(callbacks: list) -> float:
        trainer.callbacks = callbacks
        start = time.perf_counter()
        trainer.train_epoch(1)
        return 1000 * (time.perf_counter() - start) / steps

    epoch_ms(tracked), epoch_ms(plain)  # warm-up
    pairs = [(epoch_ms(plain), epoch_ms(tracked)) for _ in range(rounds)]
    trainer.callbacks = tracked
    trainer.end_run({"status": "completed", "metrics": {}})
    every = cfg.trainer.log_every_n_steps
    print(
        f"mtl_cli loop, {' '.join(overrides) or 'default config'}; {rounds} rounds x {steps} steps; "
        f"log_every_n_steps={every}"
    )
    print(f"{'loggers':<40}{'ms/step (median)':>18}{'min':>9}{'max':>9}")
    for label, times in (("logger=[csv]", [p for p, _ in pairs]), (ALL, [t for _, t in pairs])):
        print(f"{label:<40}{statistics.median(times):>18.1f}{min(times):>9.1f}{max(times):>9.1f}")
    ratios = [t / p for p, t in pairs]
    print(
        f"overhead of the trackers (median of paired ratios): {100 * (statistics.median(ratios) - 1):+.1f}% "
        f"(rounds: {', '.join(f'{100 * (r - 1):+.1f}%' for r in ratios)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="paired (none, tracker) runs per tracker")
    parser.add_argument("--every", type=int, default=10, help="trainer.log_every_n_steps")
    parser.add_argument("--calls", type=int, default=50, help="log_scalars calls for the per-call cost")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--loop", action="store_true", help="time the mtl_cli loop: every tracker vs logger=[csv]")
    parser.add_argument("--overrides", nargs="*", default=[], help="with --loop: Hydra overrides of the run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    if args.loop:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.setdefault("WANDB_DIR", tmp)
            loop_overhead(args.steps, args.rounds, args.overrides, Path(tmp))
        return

    step = make_step(args.batch, args.size)
    train(step, 5, args.every, [])  # warm-up
    step_ms = 1000 * statistics.median(train(step, args.steps, args.every, []) / args.steps for _ in range(2))
    print(
        f"training step: {step_ms:.1f} ms (batch {args.batch}, {args.size}px, {args.threads} thread(s)); "
        f"log_scalars every {args.every} steps\n"
    )
    print(f"{'logger':<26}{'caller ms/call':>15}{'% of n steps':>14}{'background ms/call':>20}{'loop overhead':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.setdefault("WANDB_DIR", str(root))
        for names in [[name] for name in TRACKERS] + [list(TRACKERS)]:
            label = "+".join(names)
            loggers = started(names, root, label)
            caller = background = 0.0
            for logger in loggers:
                c, b = call_costs(logger, args.calls)
                caller, background = caller + c, background + b
            ratios = []
            for _ in range(args.rounds):
                plain = train(step, args.steps, args.every, [])
                tracked = train(step, args.steps, args.every, loggers)
                for logger in loggers:
                    logger.flush()
                ratios.append(tracked / plain)
            for logger in loggers:
                logger.close()
            share = 100 * caller / (args.every * step_ms)
            overhead = 100 * (statistics.median(ratios) - 1)
            print(f"{label:<26}{caller:>15.3f}{share:>13.3f}%{background:>20.2f}{overhead:>+14.1f}%")


if __name__ == "__main__":
    main()
