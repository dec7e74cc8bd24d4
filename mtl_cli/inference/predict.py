"""Predicting with a trained model on image files: batches in, one set of output files per image."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from mtl_cli.errors import UserError
from mtl_cli.inference.images import InputImage, UnreadableImage, find_images, prepare, read_image
from mtl_cli.inference.loading import TrainedModel, load_trained_model
from mtl_cli.inference.overview import save_overview
from mtl_cli.inference.writers import csv_columns, csv_values, decode, output_files, write_prediction
from mtl_cli.utils.files import write_json

PREDICT_DEFAULTS: dict[str, Any] = {
    "ckpt": None,
    "input": None,
    "output": None,
    "batch_size": 16,
    "device": "auto",
    "top_k": 5,
    "overwrite": False,
    "progress": True,
}
TABLES = ("predictions.json", "predictions.csv")


@dataclass
class PredictSettings:
    """mtl-predict's settings (see ``PREDICT_DEFAULTS``)."""

    ckpt: str
    input: str
    output: str
    batch_size: int = 16
    device: str = "auto"
    top_k: int = 5
    overwrite: bool = False
    progress: bool = True


@dataclass
class PredictResult:
    """What a prediction run did: images predicted and the files skipped with their reasons."""

    output: Path
    predicted: int = 0
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """The one summary line printed at the end."""
        skipped = f", {len(self.skipped)} skipped (unreadable or unsupported)" if self.skipped else ", none skipped"
        return f"{self.predicted} image(s) predicted{skipped}; results in {self.output}"


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu" or name.startswith("cuda"):
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device={name}: no CUDA device is available; use device=cpu")
        try:
            return torch.device(name)
        except RuntimeError as exc:
            raise UserError(f"device={name}: not a device name; use auto, cpu or cuda") from exc
    raise UserError(f"device={name}: use auto, cpu or cuda")


def prepare_output(output: str, planned: list[str], overwrite: bool) -> Path:
    """The output folder, created; ``UserError`` if it is a file or would overwrite files."""
    folder = Path(output).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"output={output} is a file; give a folder for the predictions")
    existing = [name for name in planned if (folder / name).exists()]
    if existing and not overwrite:
        raise UserError(
            f"output={output} already holds {len(existing)} of the files this run would write "
            f"(e.g. {existing[0]}); choose another folder or set overwrite=true"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"output={output} cannot be created ({exc.strerror})") from exc
    return folder


def planned_files(trained: TrainedModel, images: list[InputImage]) -> list[str]:
    """Every file a run over ``images`` may write (checked against ``overwrite`` before starting)."""
    files = list(TABLES)
    for image in images:
        for task in trained.tasks:
            files.extend(output_files(task, image.name))
        files.append(f"{image.name}.overview.png")
    return files


@dataclass
class _Item:
    image: InputImage
    original: Tensor
    prepared: Tensor


def _batches(
    trained: TrainedModel, images: list[InputImage], batch_size: int, result: PredictResult, bar: tqdm
) -> Iterator[list[_Item]]:
    """Readable images in batches of one prepared size; unreadable ones are reported and skipped."""
    batch: list[_Item] = []
    for image in images:
        try:
            original = read_image(image.path)
        except UnreadableImage as exc:
            result.skipped[str(image.path)] = str(exc)
            tqdm.write(f"mtl-predict: warning: skipped {image.path}: {exc}", file=sys.stderr)
            bar.update(1)
            continue
        prepared = prepare(original, trained.input_size, trained.mean, trained.std)
        if batch and (len(batch) == batch_size or batch[0].prepared.shape != prepared.shape):
            yield batch
            batch = []
        batch.append(_Item(image, original, prepared))
    if batch:
        yield batch


def _predict_batch(
    trained: TrainedModel, batch: list[_Item], device: torch.device, folder: Path, top_k: int
) -> list[dict[str, Any]]:
    with torch.no_grad():
        outputs = trained.model(torch.stack([item.prepared for item in batch]).to(device))
    rows = []
    for i, item in enumerate(batch):
        size = tuple(item.original.shape[-2:])
        input_size = tuple(item.prepared.shape[-2:])
        records, decoded = {}, {}
        for task in trained.tasks:
            decoded[task.name] = decode(task, outputs[task.name][i], input_size, size)
            names = trained.class_names(task)
            records[task.name] = write_prediction(
                task, decoded[task.name], folder, item.image.name, names, top_k, item.original
            )
        save_overview(folder / f"{item.image.name}.overview.png", item.original, trained.tasks, decoded, records)
        rows.append(
            {
                "image": str(item.image.path),
                "name": item.image.name,
                "size": list(size),
                "overview": f"{item.image.name}.overview.png",
                "tasks": records,
            }
        )
    return rows


def _write_tables(trained: TrainedModel, folder: Path, rows: list[dict[str, Any]], result: PredictResult) -> None:
    write_json(
        folder / TABLES[0],
        {
            "checkpoint": str(trained.path),
            "tasks": {t.name: {"kind": t.kind, "classes": trained.class_names(t)} for t in trained.tasks},
            "images": rows,
            "skipped": result.skipped,
        },
    )
    columns = ["image"] + [c for t in trained.tasks for c in csv_columns(t)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row["image"]] + [v for t in trained.tasks for v in csv_values(t, row["tasks"][t.name])])
    (folder / TABLES[1]).write_text(buffer.getvalue())


def run_prediction(settings: PredictSettings) -> PredictResult:
    """Predict every task of ``settings.ckpt``'s model on ``settings.input``; write into ``settings.output``."""
    device = pick_device(settings.device)
    trained = load_trained_model(settings.ckpt)
    images = find_images(settings.input)
    folder = prepare_output(settings.output, planned_files(trained, images), settings.overwrite)
    trained.model.to(device)
    result = PredictResult(folder)
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(images), unit="img", disable=not settings.progress, file=sys.stderr) as bar:
        for batch in _batches(trained, images, settings.batch_size, result, bar):
            rows.extend(_predict_batch(trained, batch, device, folder, settings.top_k))
            result.predicted += len(batch)
            bar.update(len(batch))
    _write_tables(trained, folder, rows, result)
    return result
