"""``mtl-export ckpt=<run dir or .pt> format=onnx|torchscript``: write the model for deployment."""

from __future__ import annotations

import sys
from pathlib import Path

from mtl_cli.cli import run_cli
from mtl_cli.inference.export import export_model, export_size
from mtl_cli.inference.loading import load_trained_model
from mtl_cli.inference.options import parse_settings

USAGE = """usage: mtl-export ckpt=<run dir or .pt> format=onnx|torchscript [output=<file>] [size=HxW] [overwrite=false]

Writes the model with one named output per task (input "image": [N, 3, H, W], normalised;
N free) and a JSON sidecar <output>.json with the input size, normalisation, tasks, class
names and what each output means. Default output: beside the checkpoint (last.onnx /
last.ts.pt). size= is needed only when the training images kept their own sizes.
"""

DEFAULTS = {"ckpt": None, "format": None, "output": None, "size": None, "overwrite": False}


def _run() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return
    settings = parse_settings("mtl-export", args, DEFAULTS, required=("ckpt", "format"))
    trained = load_trained_model(settings["ckpt"])
    fmt = settings["format"]
    target = Path(settings["output"]).expanduser() if settings["output"] else None
    size = export_size(trained, settings["size"])
    meta = export_model(trained, fmt, target, size, settings["overwrite"])
    print(f"{fmt} model written to {meta.with_suffix('')}; description in {meta}")


def main() -> None:
    """Console-script entry point of ``mtl-export``."""
    run_cli("mtl-export", _run)


if __name__ == "__main__":
    main()
