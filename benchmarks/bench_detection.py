"""What detection costs and what it gains: ``det`` next to ``seg`` per step, and at equal budget.

Part 1 (always): on one batch of the built-in scenes, the CPU time per call (median of
``--repeats``; process CPU time, so the figures hold on a busy machine) of

* a training step (forward, losses, backward) of ``task=seg``, ``task=det`` and ``task=det+seg``;
* the task's own loss alone, ``L_det`` against ``L_seg`` (on fixed head outputs);
* decoding the detections (peaks, top-k, NMS), which only validation does.

Part 2 (``--seeds``): trains ``task=det``, ``task=seg`` and ``task=det+seg`` with the same
overrides (equal budget: the same epochs, batches and data) once per seed, and prints a
table of every metric as mean ± std over the seeds, with delta-m of ``det+seg`` against
the single-task runs (mAP and mIoU higher is better).

    python benchmarks/bench_detection.py                              # part 1 only
    python benchmarks/bench_detection.py --seeds 0 1 2                # + the equal-budget table
    python benchmarks/bench_detection.py --seeds 0 --overrides trainer.epochs=1 data.num_train=512
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine.build import build_components
from mtl_cli.reporting import delta_m

COMBOS = ("seg", "det", "seg+det")


def cpu_ms(fn, repeats: int) -> float:
    """Median process CPU time of ``fn()`` in milliseconds (one warm-up call first)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(1000 * (time.process_time() - start))
    return statistics.median(times)


def step_costs(overrides: list[str], repeats: int) -> None:
    """Print part 1: training step, loss and decoding cost per batch."""
    rows = []
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for combo in COMBOS:
            cfg = validate(
                compose(
                    "train",
                    overrides=[
                        f"task={combo}",
                        "data.num_train=64",
                        "data.num_val=8",
                        "trainer.progress=false",
                        *overrides,
                    ],
                )
            )
            parts = build_components(cfg)
            batch = next(iter(parts.train_loader))
            model, tasks = parts.model.train(), parts.tasks

            def step(model=model, batch=batch, tasks=tasks) -> None:
                model.zero_grad(set_to_none=True)
                preds = model(batch["image"])
                sum(t.loss(preds[t.name], batch[t.name]) for t in tasks).backward()

            with torch.no_grad():
                preds = model(batch["image"])
            rows.append((f"train step task={combo}", cpu_ms(step, repeats)))
            for task in tasks:
                raw = preds[task.name].detach()
                target = batch[task.name]
                rows.append(
                    (
                        f"  loss {task.name} (in task={combo})",
                        cpu_ms(lambda t=task, r=raw, y=target: t.loss(r, y), repeats),
                    )
                )
                if task.kind == "det":
                    rows.append(
                        (
                            f"  decode {task.name} (validation only)",
                            cpu_ms(lambda t=task, r=raw: t.metric_input(r), repeats),
                        )
                    )
    print(f"CPU ms per batch of {batch['image'].shape[0]} ({torch.get_num_threads()} threads, median of {repeats})")
    for name, ms in rows:
        print(f"  {name:<40} {ms:8.1f}")


def train_runs(seeds: list[int], overrides: list[str], out: Path) -> dict[str, list[dict]]:
    """Train every combo once per seed; their summaries by combo."""
    summaries: dict[str, list[dict]] = {combo: [] for combo in COMBOS}
    for seed in seeds:
        for combo in COMBOS:
            run_dir = out / f"{combo}_seed{seed}"
            args = [
                f"task={combo}",
                f"trainer.seed={seed}",
                "trainer.progress=false",
                f"hydra.run.dir={run_dir}",
                *overrides,
            ]
            subprocess.run([sys.executable, "-m", "mtl_cli.train", *args], check=True, capture_output=True)
            summaries[combo].append(json.loads((run_dir / "summary.json").read_text()))
            print(f"  trained task={combo} seed={seed}: {summaries[combo][-1]['metrics']}", flush=True)
    return summaries


def mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {std:.4f}"


def quality_table(summaries: dict[str, list[dict]]) -> None:
    """Print part 2: every metric as mean ± std over seeds, and delta-m of det+seg."""
    joint = summaries["seg+det"]
    columns = [(task, name) for task, values in joint[0]["metrics"].items() for name in values]
    print("\n| run | " + " | ".join(f"{t}.{m}" for t, m in columns) + " | Δm % |")
    print("|---" * (len(columns) + 2) + "|")
    for combo in COMBOS:
        runs = summaries[combo]
        cells = [mean_std([r["metrics"][t][m] for r in runs]) if t in runs[0]["metrics"] else "" for t, m in columns]
        deltas = ""
        if combo == "seg+det":
            values = [
                delta_m(run["metrics"], {**seg["metrics"], **det["metrics"]}, run["metric_directions"])
                for run, seg, det in zip(runs, summaries["seg"], summaries["det"])
            ]
            deltas = mean_std(values)
        print(f"| task={combo} | " + " | ".join(cells) + f" | {deltas} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="Hydra overrides for every run, e.g. trainer.epochs=3"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (after one warm-up)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help="train det, seg and det+seg once per seed")
    parser.add_argument(
        "--out", type=Path, default=None, help="where the runs of --seeds go (default: a temporary folder)"
    )
    args = parser.parse_args()
    register_configs()
    step_costs(args.overrides, args.repeats)
    if args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            quality_table(train_runs(args.seeds, args.overrides, args.out or Path(tmp)))


if __name__ == "__main__":
    main()
