"""``mtl-eval ckpt=<path> [split=val] [output=...] [overrides]``: evaluate a saved checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

from mtl_cli.cli import run_cli
from mtl_cli.engine.eval_run import evaluate_checkpoint, split_arguments
from mtl_cli.engine.records import format_metrics
from mtl_cli.errors import UserError
from mtl_cli.utils.files import write_json

USAGE = """usage: mtl-eval ckpt=<checkpoint or run dir> [split=val|train] [output=<file.json>] [key=value ...]

Rebuilds the model from the checkpoint's own saved config, evaluates it on the split, prints
the per-task metrics and writes them as JSON (default: beside the checkpoint).
Overrides apply on top of the saved config, e.g. data.root=/data trainer.device=cpu
trainer.batch_size=128; task=, backbone= and arch= must match the checkpoint.
"""


def _run() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return
    options, overrides = split_arguments(args)
    result = evaluate_checkpoint(options, overrides)
    print(f"{result['checkpoint']} (epoch {result['epoch']}): {result['split']} split, {result['images']} images")
    print(format_metrics(result["metrics"]))
    target = options.output_path(Path(result["checkpoint"]))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_json(target, result)
    except OSError as exc:
        raise UserError(f"cannot write the metrics to {target} ({exc.strerror}); choose a file with output=") from exc
    print(f"metrics written to {target}")


def main() -> None:
    """Console-script entry point of ``mtl-eval``."""
    run_cli("mtl-eval", _run)


if __name__ == "__main__":
    main()
