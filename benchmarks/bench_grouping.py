"""Grouped sharing from measured affinity against all-shared and single-task models, over seeds.

For every seed it trains, with the same config and training budget (epochs, steps):
the all-shared model (``arch=grouped`` with one group), ``arch=grouped arch.groups=auto``
(whose warm-up steps come on top of the budget and are counted in its time), and one
single-task model per task (the Delta-m baselines of that seed). Prints mean +- std over
the seeds of Delta-m (percent over the single-task models; positive = better), the
parameter count and the wall time, then the groups each seed chose. Every run directory,
with the auto runs' ``warmup_relations.png`` heatmaps, stays under ``--out``.

    python benchmarks/bench_grouping.py                                   # six shapes tasks, 3 seeds
    python benchmarks/bench_grouping.py --seeds 3 --warmup-steps 8 --overrides data.num_train=256 trainer.epochs=3
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine.run import train_run
from mtl_cli.reporting.deltam import delta_m

SIX = ["cls", "seg", "depth", "normals", "edges", "multilabel"]


def run(name: str, overrides: list[str], out: Path) -> dict[str, Any]:
    """Train one run in ``out/name`` and return its summary."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = validate(compose("train", overrides=["trainer.progress=false", "trainer.vis_images=0", *overrides]))
    return train_run(cfg, out / name, overrides=overrides)


def mean_std(values: list[float]) -> str:
    """``mean ± std`` (std 0 for one value)."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {spread:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=SIX, help="the tasks (default: the six shapes tasks)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--warmup-steps", type=int, default=50, help="arch.warmup_steps of the groups=auto runs")
    parser.add_argument("--branch-at", default="1", help="arch.branch_at of the grouped models (a backbone stage)")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for every run")
    parser.add_argument("--out", default="outputs/bench_grouping", help="where the run directories go")
    args = parser.parse_args()

    register_configs()
    out = Path(args.out)
    task = "task=" + "+".join(args.tasks)
    grouped = ["arch=grouped", f"arch.branch_at={args.branch_at}"]
    everyone = "[[" + ",".join(args.tasks) + "]]"
    rows: dict[str, dict[str, list[float]]] = {
        name: {"dm": [], "params": [], "time": []} for name in ("all-shared", "groups=auto", "single-task")
    }
    warmups: list[float] = []
    chosen: list[str] = []
    for seed in range(args.seeds):
        common = [*args.overrides, f"trainer.seed={seed}"]
        singles = {t: run(f"seed{seed}/single_{t}", [*common, f"task={t}"], out) for t in args.tasks}
        baselines = {t: s["metrics"][t] for t, s in singles.items()}
        directions = {t: s["metric_directions"][t] for t, s in singles.items()}
        shared = run(f"seed{seed}/shared", [*common, task, *grouped, f"arch.groups={everyone}"], out)
        auto = run(
            f"seed{seed}/auto",
            [*common, task, *grouped, "arch.groups=auto", f"arch.warmup_steps={args.warmup_steps}"],
            out,
        )
        for name, summary in (("all-shared", shared), ("groups=auto", auto)):
            rows[name]["dm"].append(delta_m(summary["metrics"], baselines, directions))
            rows[name]["params"].append(summary["params"]["total"])
            rows[name]["time"].append(summary["wall_time_s"])
        rows["single-task"]["dm"].append(0.0)
        rows["single-task"]["params"].append(sum(s["params"]["total"] for s in singles.values()))
        rows["single-task"]["time"].append(sum(s["wall_time_s"] for s in singles.values()))
        warmups.append(auto["grouping"]["warmup_seconds"])
        chosen.append(" ".join("{" + ",".join(g) + "}" for g in auto["grouping"]["groups"]))

    print(
        f"tasks {'+'.join(args.tasks)}; {args.seeds} seeds; overrides: {' '.join(args.overrides) or '(defaults)'}; "
        f"branch_at {args.branch_at}; warm-up {args.warmup_steps} steps"
    )
    print("| model | Δm % (mean ± std) | parameters | wall time s (mean ± std) |")
    print("|---|---|---|---|")
    for name, values in rows.items():
        params = statistics.mean(values["params"])
        print(f"| {name} | {mean_std(values['dm'])} | {params:,.0f} | {mean_std(values['time'])} |")
    print(f"groups=auto warm-up: {mean_std(warmups)} s of its wall time")
    for seed, groups in enumerate(chosen):
        print(f"seed {seed}: groups {groups}")


if __name__ == "__main__":
    main()
