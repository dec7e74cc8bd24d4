"""Exporting a trained model to ONNX or TorchScript, with a JSON sidecar that says how to use it.

The exported graph takes one normalised ``image`` batch ``[N, 3, H, W]`` (``N`` free, ``H`` and
``W`` fixed to the training size) and has one named output per task: the raw head output,
whose meaning the sidecar spells out per task kind (for ``det`` also how to decode boxes).

ONNX goes through torch's ``torch.export``-based exporter (``dynamo=True``): the TorchScript-based
one cannot express mtan's attention resizing (adaptive pooling to a size read from a tensor
shape) once the batch dimension is dynamic, while ``torch.export`` keeps ``H`` and ``W`` static
and only the batch symbolic. It runs offline; it needs the ``onnx`` and ``onnxscript`` packages.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mtl_cli.errors import UserError, one_line
from mtl_cli.inference.detection import export_decoding, output_shape
from mtl_cli.inference.loading import TrainedModel
from mtl_cli.tasks import Task
from mtl_cli.tasks.detection.task import DetectionTask
from mtl_cli.utils.files import write_json

FORMATS = {"onnx": ".onnx", "torchscript": ".ts.pt"}
EXPORT_FORMAT = "mtl_cli-export"
EXPORT_VERSION = 1
MAX_BATCH = 4096

# What each task kind's output holds, by kind; a kind not listed cannot be exported.
OUTPUT_MEANINGS = {
    "cls": ("[N, C]", "class logits; softmax over C gives the class probabilities"),
    "multilabel": ("[N, C]", "label logits; sigmoid gives each label's probability (present when >= 0.5)"),
    "seg": ("[N, C, H, W]", "per-pixel class logits; argmax over C gives the class map"),
    "depth": ("[N, 1, H, W]", "depth per pixel, in the units of the training labels"),
    "normals": ("[N, 3, H, W]", "surface normal per pixel before normalisation; divide by its L2 norm over C"),
    "edges": ("[N, 1, H, W]", "edge logits; sigmoid gives the edge probability"),
    "det": (
        "[N, C, ceil(H/4), ceil(W/4)]",
        "CenterNet-style raw output on a stride-4 grid: per-class centre-heatmap logits, then four box "
        "channels per cell; 'decoding' says how to turn it into boxes",
    ),
}


class ExportModule(nn.Module):
    """``model`` with its ``{task: output}`` dict turned into a tuple in task order (exporters need one)."""

    def __init__(self, model: nn.Module, task_names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.task_names = list(task_names)

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        outputs = self.model(image)
        return tuple(outputs[name] for name in self.task_names)


def export_size(trained: TrainedModel, size: str | None) -> tuple[int, int]:
    """The fixed ``(H, W)`` of the exported input: ``size=HxW`` if given, else the training size."""
    if size:
        try:
            h, w = (int(v) for v in size.lower().split("x"))
        except ValueError:
            h = w = 0
        if h <= 0 or w <= 0:
            raise UserError(f"size={size}: give the input size as HxW, e.g. size=256x320")
        return h, w
    if trained.input_size is None:
        raise UserError(
            f"the checkpoint's data (data={trained.cfg.data.name}) kept each file's own size; "
            f"give the exported input size as size=HxW"
        )
    return trained.input_size


def sidecar(trained: TrainedModel, fmt: str, model_file: Path, size: tuple[int, int]) -> dict[str, Any]:
    """The JSON description of an exported model: input, normalisation, and one entry per output."""
    outputs = []
    for task in trained.tasks:
        if task.kind not in OUTPUT_MEANINGS:
            raise UserError(
                f"task {task.name} is of kind {task.kind}, whose output mtl-export cannot describe; "
                f"export a checkpoint without it"
            )
        template, meaning = OUTPUT_MEANINGS[task.kind]
        entry = {
            "name": task.name,
            "kind": task.kind,
            "shape": _shape(task, template, size),
            "meaning": meaning,
            "classes": trained.class_names(task),
        }
        if isinstance(task, DetectionTask):
            entry["decoding"] = export_decoding(task)
        outputs.append(entry)
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "model_file": model_file.name,
        "model_format": fmt,
        "checkpoint": str(trained.path),
        "backbone": trained.cfg.backbone.name,
        "arch": trained.cfg.arch.name,
        "input": {
            "name": "image",
            "shape": ["N", 3, size[0], size[1]],
            "dtype": "float32",
            "layout": "RGB, channels first; N (the batch size) may be anything from 1",
            "normalization": "x = (pixel / 255 - mean) / std per channel",
            "mean": trained.mean,
            "std": trained.std,
        },
        "outputs": outputs,
    }


def _shape(task: Task, template: str, size: tuple[int, int]) -> str:
    """``task``'s output shape for an ``size = (H, W)`` input, its kind's ``template`` filled in."""
    if isinstance(task, DetectionTask):
        return output_shape(task, size)
    return template.replace("C", str(task.out_channels)).replace("H", str(size[0])).replace("W", str(size[1]))


def default_output(trained: TrainedModel, fmt: str) -> Path:
    """``<checkpoint stem><suffix>`` beside the checkpoint."""
    return trained.path.with_name(trained.path.stem + FORMATS[fmt])


def export_model(
    trained: TrainedModel, fmt: str, target: Path | None, size: tuple[int, int], overwrite: bool = False
) -> Path:
    """Write ``trained``'s model as ``fmt`` to ``target`` and its sidecar to ``<target>.json``; return the sidecar.

    ``target`` None means ``default_output``.
    """
    if fmt not in FORMATS:
        raise UserError(f"format={fmt}: choose one of {', '.join(FORMATS)}")
    target = target or default_output(trained, fmt)
    meta_file = target.with_name(target.name + ".json")
    if target.exists() and target.is_dir():
        raise UserError(f"output={target} is a folder; give the file to write")
    if target.parent.exists() and not target.parent.is_dir():
        raise UserError(f"output={target}: {target.parent} is a file, not a folder")
    for path in (target, meta_file):
        if path.exists() and not overwrite:
            raise UserError(f"{path} already exists; choose another output= or set overwrite=true")
    meta = sidecar(trained, fmt, target, size)
    module = ExportModule(trained.model.cpu().eval(), [t.name for t in trained.tasks]).eval()
    example = torch.zeros(2, 3, *size)
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        _export_onnx(module, example, target)
    else:
        _export_torchscript(module, example, target)
    write_json(meta_file, meta)
    return meta_file


def _export_torchscript(module: ExportModule, example: Tensor, target: Path) -> None:
    """Trace ``module`` (its outputs do not depend on data, so a trace is the whole model)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape arithmetic; H and W are fixed anyway
        traced = torch.jit.trace(module, example, check_trace=False)
    traced.save(str(target))


def _export_onnx(module: ExportModule, example: Tensor, target: Path) -> None:
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise UserError("format=onnx needs the onnx and onnxscript packages: pip install 'mtl-cli[export]'") from exc
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    quiet = io.StringIO()
    level = logging.getLogger("torch").level
    logging.getLogger("torch").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=["image"],
                output_names=list(module.task_names),
                dynamic_shapes={"image": {0: batch}},
            )
            program.save(str(target))
    except Exception as exc:  # the exporter raises many types; name what failed in one line
        raise UserError(f"ONNX export failed: {one_line(str(exc))[:300]}") from exc
    finally:
        logging.getLogger("torch").setLevel(level)
