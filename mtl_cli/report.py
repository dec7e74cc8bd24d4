"""``mtl-report``: compare runs (a multirun directory or several run directories) in one report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mtl_cli.errors import UserError, one_line
from mtl_cli.reporting import build_report, write_report

DESCRIPTION = """Reads the runs' summary.json files and writes report.md, report.csv and pareto.png:
one row per run with the swept values, every task metric and delta-m against the
single-task runs found among them (or given with --baselines), the best run per metric
and by delta-m, and the runs that failed or did not finish."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtl-report", description=DESCRIPTION)
    p.add_argument("runs", nargs="+", help="multirun directories and/or run directories")
    p.add_argument(
        "--baselines",
        nargs="+",
        default=[],
        metavar="DIR",
        help="single-task runs (or their multirun dir) to compare with",
    )
    p.add_argument("--out", type=Path, help="where to write the report (default: the one directory given)")
    p.add_argument(
        "--pareto",
        nargs=2,
        metavar=("X", "Y"),
        help="two metrics, e.g. cls.accuracy seg.miou (default: the main metrics of the first two tasks)",
    )
    p.add_argument(
        "--metrics",
        choices=("final", "best"),
        default="final",
        help="last-epoch (default) or best-epoch validation metrics",
    )
    return p


def run(argv: Sequence[str]) -> list[Path]:
    """Build, print and write the report; return the written files."""
    args = parser().parse_args(argv)
    out = args.out
    if out is None:
        if len(args.runs) != 1:
            raise UserError("several directories given: choose where the report goes with --out DIR")
        out = Path(args.runs[0])
    report = build_report(args.runs, args.baselines, args.metrics)
    written = write_report(report, out, tuple(args.pareto) if args.pareto else None)
    print(report.markdown(), end="")
    print("\nwritten: " + ", ".join(str(p) for p in written))
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point of ``mtl-report``."""
    try:
        run(sys.argv[1:] if argv is None else argv)
    except UserError as exc:
        print(f"mtl-report: error: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # e.g. a report file that cannot be written
        where = f" {exc.filename}" if exc.filename else ""
        print(f"mtl-report: error: cannot write{where} ({exc.strerror or exc})", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
