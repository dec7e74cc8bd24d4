"""``mtl-predict ckpt=<run dir or .pt> input=<image|folder|glob> output=<dir>``: predict on image files."""

from __future__ import annotations

import sys

from mtl_cli.cli import run_cli
from mtl_cli.inference.options import parse_settings
from mtl_cli.inference.predict import PREDICT_DEFAULTS, PredictSettings, run_prediction

USAGE = """usage: mtl-predict ckpt=<run dir or .pt> input=<image | folder | glob> output=<dir> [key=value ...]

Rebuilds the model from the checkpoint's own config and predicts every task on each image
(resized as in training; dense outputs and boxes mapped back to the image's size). Writes
per image and task: seg <name>.<task>.png (colours) + .index.png (class ids); depth .png
(16-bit, depth x 1000) + .npy; normals .png (RGB); edges .png; det .json (boxes, scores,
classes) + .png (boxes drawn on the image); <name>.overview.png; and predictions.json /
predictions.csv with the classes, top-k probabilities and labels.

settings: batch_size=16 device=auto|cpu|cuda top_k=5 overwrite=false progress=true
"""


def _run() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return
    settings = parse_settings("mtl-predict", args, PREDICT_DEFAULTS, required=("ckpt", "input", "output"))
    result = run_prediction(PredictSettings(**settings))
    print(result.summary())


def main() -> None:
    """Console-script entry point of ``mtl-predict``."""
    run_cli("mtl-predict", _run)


if __name__ == "__main__":
    main()
