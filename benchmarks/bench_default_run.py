"""The default run as a new user meets it: wall time and final metrics of ``mtl-train`` over seeds.

Runs ``mtl-train <overrides> trainer.seed=<s>`` once per seed, one process at a time, and
times each process from start to exit (imports, scene rendering, training, validation and
the run's records included). Prints one row per seed with the wall seconds and the final
value of every task's primary metric, then the mean over seeds next to the targets given
with ``--target`` (``task.metric=value``, higher is better unless the metric's direction
says otherwise) and ``--max-seconds``. Measure on an otherwise idle machine.

Wall time follows the machine's speed, which on a shared host drifts. Before each run the
script times a fixed reference workload in this process (``reference_step_ms``: training
steps of a plain PyTorch conv net, same thread count as the runs) and prints it beside
the run's wall time, so that measurements taken at different times can be compared.

    python benchmarks/bench_default_run.py                          # task=cls+seg, seeds 0 1 2
    python benchmarks/bench_default_run.py --overrides task=det --seeds 0 --target det.map_50=0.5
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

DEFAULT_TARGETS = ["cls.accuracy=0.70", "seg.miou=0.60"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--overrides", nargs="*", default=["task=cls+seg"], help="mtl-train overrides of every run")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--target", nargs="*", default=DEFAULT_TARGETS, help="task.metric=value goals for the mean")
    p.add_argument("--max-seconds", type=float, default=60.0, help="goal for the mean wall seconds per run")
    p.add_argument("--out", type=Path, default=Path("outputs/default-run"), help="folder of the run directories")
    return p


def reference_step_ms(steps: int = 20) -> float:
    """Median milliseconds of one Adam step of a fixed plain conv net on 32 random 64 px images."""
    generator = torch.Generator().manual_seed(0)
    layers: list[nn.Module] = []
    channels = 3
    for width in (24, 48, 96):
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    net = nn.Sequential(*layers, nn.Conv2d(channels, 5, 1))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    images = torch.randn(32, 3, 64, 64, generator=generator)
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        optimizer.zero_grad()
        net(images).square().mean().backward()
        optimizer.step()
        if i >= 3:  # the first steps warm up the allocator and the kernels
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def timed_run(overrides: list[str], run_dir: Path) -> tuple[float, dict]:
    """Wall seconds of one ``mtl-train`` process and its ``summary.json``."""
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists; choose another --out or remove it (runs are never reused)")
    args = [sys.executable, "-m", "mtl_cli.train", *overrides, f"hydra.run.dir={run_dir}", "trainer.progress=false"]
    print("+", shlex.join(["mtl-train", *args[3:]]), flush=True)
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, json.loads((run_dir / "summary.json").read_text())


def parse_targets(targets: list[str]) -> dict[tuple[str, str], float]:
    """``["cls.accuracy=0.7"]`` -> ``{("cls", "accuracy"): 0.7}``."""
    parsed = {}
    for target in targets:
        key, _, value = target.partition("=")
        task, _, metric = key.partition(".")
        if not (task and metric and value):
            raise SystemExit(f"--target {target!r}: expected task.metric=value, e.g. cls.accuracy=0.7")
        parsed[(task, metric)] = float(value)
    return parsed


def main() -> None:
    args = parser().parse_args()
    targets = parse_targets(args.target)
    rows: list[tuple[int, float, float, dict]] = []
    for seed in args.seeds:
        reference = reference_step_ms()
        seconds, summary = timed_run([*args.overrides, f"trainer.seed={seed}"], args.out / f"s{seed}")
        rows.append((seed, seconds, reference, summary))
    summary = rows[0][3]
    keys = [(task, metric) for task, metric in summary["primary_metrics"].items()]
    keys += [key for key in targets if key not in keys]
    header = ["seed", "wall s", "reference step ms", *(f"{t}.{m}" for t, m in keys)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for seed, seconds, reference, s in rows:
        values = [f"{s['metrics'][t][m]:.4f}" for t, m in keys]
        lines.append("| " + " | ".join([str(seed), f"{seconds:.1f}", f"{reference:.1f}", *values]) + " |")
    mean_seconds = statistics.fmean(row[1] for row in rows)
    mean_reference = statistics.fmean(row[2] for row in rows)
    means = {key: statistics.fmean(row[3]["metrics"][key[0]][key[1]] for row in rows) for key in keys}
    mean_values = [f"{means[k]:.4f}" for k in keys]
    lines.append("| mean | " + " | ".join([f"{mean_seconds:.1f}", f"{mean_reference:.1f}", *mean_values]) + " |")
    goals = [f"{mean_seconds:.1f} s {'<=' if mean_seconds <= args.max_seconds else '>'} {args.max_seconds:g} s"]
    for (task, metric), goal in targets.items():
        higher = summary["metric_directions"][task][metric]
        met = means[(task, metric)] >= goal if higher else means[(task, metric)] <= goal
        goals.append(f"{task}.{metric} {means[(task, metric)]:.4f} {'meets' if met else 'misses'} {goal:g}")
    print(f"mtl-train {shlex.join(args.overrides)}, seeds {' '.join(map(str, args.seeds))}")
    print("\n".join(lines))
    print("targets (mean over seeds): " + "; ".join(goals))


if __name__ == "__main__":
    main()
