"""TensorBoard: event files under the run directory, pictures as images, hparams at the end."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from mtl_cli.loggers.base import RunInfo, Scalar, TrackerLogger
from mtl_cli.loggers.config import TensorBoardOptions

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def hparam_value(value: Scalar) -> int | float | str | bool:
    """A config value as TensorBoard's HParams plugin accepts it (others become their text)."""
    return value if isinstance(value, (int, float, str, bool)) else str(value)


class TensorBoardLogger(TrackerLogger):
    """Writes ``<run dir>/<subdir>`` event files; ``tensorboard --logdir`` on a sweep shows every job.

    Resuming appends to the same directory and drops the old run's points after the resume step.
    Pictures become images (TensorBoard has no other artifacts); other files are not logged.
    """

    name = "tensorboard"

    def __init__(self, options: TensorBoardOptions) -> None:
        self.options = options
        self.writer: SummaryWriter | None = None

    def start(self, run: RunInfo) -> None:
        log_dir = Path(run.run_dir) / self.options.subdir
        purge = None if run.resume_step is None else run.resume_step + 1  # TensorBoard drops steps >= purge
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge)

    def _writer(self) -> SummaryWriter:
        if self.writer is None:
            raise RuntimeError("TensorBoard logger used before start()")
        return self.writer

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        writer = self._writer()
        for key, value in values.items():
            writer.add_scalar(key, float(value), global_step=step)

    def log_hparams(self, params: Mapping[str, Scalar], final_metrics: Mapping[str, float]) -> None:
        hparams = {key: hparam_value(value) for key, value in params.items()}
        metrics = {f"final/{key}": float(value) for key, value in final_metrics.items()}
        # run_name="." keeps the hparams in the run's own directory, beside its scalars.
        self._writer().add_hparams(hparams, metrics, run_name=".")
        self._writer().flush()

    def log_artifact(self, path: Path, step: int | None = None) -> None:
        path = Path(path)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            return
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self._writer().add_image(path.stem, pixels, global_step=step, dataformats="HWC")

    def close(self, failed: bool = False) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
