"""The project's results table: single-task baselines and multi-task runs over seeds, Δm, cost per step.

Suites (``--suites``): ``cls+seg``, ``dense`` (seg+depth+normals+edges) and ``seg+det`` on
shapes, and ``multimnist`` (left+right, the Sener & Koltun setting). Each suite trains every one of
its tasks alone, then all of them together with every method of ``--methods``, for every
seed of ``--seeds``, one ``mtl-train`` process at a time (with the repository's defaults
plus ``--overrides``). ``--relation`` adds one more multi-task run per suite and seed:
``weighting=ew relation=given`` with every pair of tasks coupled (run folder ``relation-s<seed>``). ``mtl-report`` reads the runs; the table (mean ± std over seeds of
every metric with its trivial baseline in brackets, Δm against the same seed's
single-task runs, seconds per optimiser step) goes to ``<out>/results.md`` together with
the command and the commit that produced it.

    python benchmarks/bench_quality.py --out outputs/quality                     # the full table
    python benchmarks/bench_quality.py --suites cls+seg --methods ew --seeds 0 \\
        --overrides data.num_train=64 data.num_val=32 trainer.epochs=1 --out outputs/quality-tiny
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from mtl_cli.reporting import build_report
from mtl_cli.reporting.report import DELTA_M, Report

SUITES: dict[str, tuple[list[str], list[str]]] = {  # name -> (tasks, extra overrides)
    "cls+seg": (["cls", "seg"], []),
    "dense": (["seg", "depth", "normals", "edges"], []),
    "multimnist": (["left", "right"], ["data=multimnist"]),
    "seg+det": (["seg", "det"], []),
}
METHODS = ["ew", "uw", "dwa", "famo", "db_mtl", "mgda", "pcgrad", "cagrad", "nash_mtl"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suites", nargs="+", choices=list(SUITES), default=list(SUITES))
    p.add_argument("--methods", nargs="+", default=METHODS, help="weighting methods of the multi-task runs")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--overrides", nargs="*", default=[], help="extra mtl-train overrides for every run")
    p.add_argument(
        "--relation", action="store_true", help="also train ew with relation=given, every pair of tasks coupled"
    )
    p.add_argument("--out", type=Path, default=Path("outputs/quality"), help="folder of the runs and results.md")
    return p


def train(run_dir: Path, overrides: list[str]) -> None:
    """One ``mtl-train`` run into ``run_dir``: skipped when it already completed there; an
    unfinished earlier attempt is moved aside to ``<run_dir>.unfinished-<n>`` first."""
    if (run_dir / "summary.json").is_file() and '"completed"' in (run_dir / "summary.json").read_text():
        return
    if run_dir.exists():
        attempt = 1
        while run_dir.with_name(f"{run_dir.name}.unfinished-{attempt}").exists():
            attempt += 1
        run_dir.rename(run_dir.with_name(f"{run_dir.name}.unfinished-{attempt}"))
    args = [sys.executable, "-m", "mtl_cli.train", *overrides, f"hydra.run.dir={run_dir}", "trainer.progress=false"]
    print("+", shlex.join(args[2:]), flush=True)
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def relation_overrides(tasks: list[str]) -> list[str]:
    """``weighting=ew relation=given`` with R_ij = 1 for every pair of distinct tasks."""
    matrix = [[0 if i == j else 1 for j in range(len(tasks))] for i in range(len(tasks))]
    return ["weighting=ew", "relation=given", f"relation.matrix={matrix}".replace(" ", "")]


def seconds_per_step(report: Report, rows: list) -> str:
    """Mean wall seconds per optimiser step of ``rows`` (training and validation)."""
    values = [r.run.summary["wall_time_s"] / r.run.summary["steps"] for r in rows if r.run.summary.get("steps")]
    return f"{statistics.fmean(values):.3f}" if values else "—"


def table(report: Report) -> list[str]:
    """One Markdown row per configuration: mean ± std over seeds, Δm, cost per step."""
    keys = [*report.metrics, DELTA_M]
    header = ["configuration", "seeds", *keys, "s / step"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for group in report.seed_groups():
        cells = [group.label, ",".join(group.seeds), *(report.seed_cell(group, k) for k in keys)]
        lines.append("| " + " | ".join([*cells, seconds_per_step(report, group.rows)]) + " |")
    return lines


def commit() -> str:
    """The checked-out commit (with ``+dirty`` when the work tree has changes)."""
    root = Path(__file__).resolve().parent.parent
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout.strip()
    return sha + ("+dirty" if dirty else "") if sha else "unknown"


def main() -> None:
    args = parser().parse_args()
    command = shlex.join(["python", "benchmarks/bench_quality.py", *sys.argv[1:]])
    sections = [
        f"Command: `{command}`",
        f"Commit: `{commit()}`",
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
    ]
    for suite in args.suites:
        tasks, extra = SUITES[suite]
        folder = args.out / suite.replace("+", "_")
        for seed in args.seeds:
            common = [*extra, *args.overrides, f"trainer.seed={seed}"]
            for task in tasks:
                train(folder / f"{task}-s{seed}", [f"task={task}", *common])
            for method in args.methods:
                train(folder / f"{method}-s{seed}", [f"task={'+'.join(tasks)}", f"weighting={method}", *common])
            if args.relation:
                train(folder / f"relation-s{seed}", [f"task={'+'.join(tasks)}", *relation_overrides(tasks), *common])
        report = build_report([folder])
        sections += ["", f"## {suite}", "", *table(report)]
    text = "\n".join(sections) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
