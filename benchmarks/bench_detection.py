"""What detection costs: ``det`` next to ``seg`` per optimiser step, and what decoding adds.

On one batch of the built-in scenes, the CPU time per call (median of
``--repeats``; process CPU time, so the figures hold on a busy machine) of

* a training step (forward, losses, backward) of ``task=seg``, ``task=det`` and ``task=det+seg``;
* the task's own loss alone, ``L_det`` against ``L_seg`` (on fixed head outputs);
* decoding the detections (peaks, top-k, NMS), which only validation does.

What detection gains at equal budget (``det``, ``seg`` and ``seg+det`` over seeds, with Δm)
is the ``seg+det`` suite of the quality benchmark (``benchmarks/bench_quality.py``).

    python benchmarks/bench_detection.py
    python benchmarks/bench_detection.py --overrides data.image_size=48 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from hydra import compose, initialize_config_dir

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine.build import build_components

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="Hydra overrides for every run, e.g. trainer.epochs=3"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (after one warm-up)")
    args = parser.parse_args()
    register_configs()
    step_costs(args.overrides, args.repeats)


if __name__ == "__main__":
    main()
