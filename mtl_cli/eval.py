"""``mtl-eval ckpt=<path> [split=val] [output=...] [overrides]``: evaluate a saved checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mtl_cli.cli import run_cli
from mtl_cli.engine.eval_run import evaluate_checkpoint, split_arguments
from mtl_cli.engine.records import format_metrics
from mtl_cli.engine.resume import resolve_checkpoint
from mtl_cli.errors import UserError
from mtl_cli.utils.files import write_json

USAGE = """usage: mtl-eval ckpt=<checkpoint or run dir> [split=val|train] [output=<file.json>] [overwrite=true] [key=value ...]

Rebuilds the model from the checkpoint's own saved config, evaluates it on the split, prints
the per-task metrics and writes them as JSON (default: beside the checkpoint). An existing
file other than an earlier mtl-eval result is replaced only with overwrite=true.
Overrides apply on top of the saved config, e.g. data.root=/data trainer.device=cpu
trainer.batch_size=128; task=, backbone= and arch= must match the checkpoint.
"""


def _is_eval_result(path: Path) -> bool:
    """Whether ``path`` holds what an earlier ``mtl-eval`` wrote (a JSON object with its keys)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and {"checkpoint", "split", "metrics"} <= data.keys()


def check_output(target: Path, overwrite: bool) -> None:
    """Refuse an output that would replace a file mtl-eval did not write, unless ``overwrite``."""
    if target.is_dir():
        raise UserError(f"output={target} is a directory; give a file name such as output=eval.json")
    if target.exists() and not overwrite and not _is_eval_result(target):
        raise UserError(
            f"output={target} already exists and is not an earlier mtl-eval result; choose another file "
            f"or add overwrite=true to replace it"
        )


def _run() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if args else sys.stderr)
        if not args:
            raise SystemExit(2)
        return
    options, overrides = split_arguments(args)
    target = options.output_path(resolve_checkpoint(options.ckpt, key="ckpt"))
    check_output(target, options.overwrite)
    result = evaluate_checkpoint(options, overrides)
    print(f"{result['checkpoint']} (epoch {result['epoch']}): {result['split']} split, {result['images']} images")
    print(format_metrics(result["metrics"]))
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
