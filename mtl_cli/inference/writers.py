"""What ``mtl-predict`` writes for one image and task, by task kind.

Image-level tasks (``cls``, ``multilabel``) return a record for the run's
``predictions.json`` / ``predictions.csv``; dense tasks and ``det`` write files named
``<image name>.<task>[.<what>].<ext>`` and return their names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from mtl_cli.errors import UserError
from mtl_cli.inference.detection import boxes_to_image, detection_records
from mtl_cli.tasks import Task
from mtl_cli.utils.files import write_json

DEPTH_PNG_SCALE = 1000.0  # 16-bit depth PNG values are depth * 1000 (millimetres for metres)
MULTILABEL_THRESHOLD = 0.5


def picture_rgb(task: Task, prediction: Tensor) -> np.ndarray:
    """``task``'s own picture of a dense ``prediction`` (``Task.draw``) as an ``[H, W, 3]`` uint8 array."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    array, options = task.draw(prediction.float().cpu())
    if array.ndim == 2:
        scale = Normalize(vmin=options.get("vmin"), vmax=options.get("vmax"))
        array = colormaps[options.get("cmap", "viridis")](scale(array))[..., :3]
    return (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _label(index: int, names: Sequence[str] | None) -> str:
    return names[index] if names is not None and index < len(names) else str(index)


def output_files(task: Task, name: str) -> list[str]:
    """The files written for ``task`` on the image called ``name`` (none for image-level tasks)."""
    base = f"{name}.{task.name}"
    files = {
        "cls": [],
        "multilabel": [],
        "seg": [f"{base}.png", f"{base}.index.png"],
        "depth": [f"{base}.png", f"{base}.npy"],
        "normals": [f"{base}.png"],
        "edges": [f"{base}.png"],
        "det": [f"{base}.json", f"{base}.png"],
    }
    if task.kind not in files:
        raise UserError(f"task {task.name} is of kind {task.kind}, for which mtl-predict has no output format")
    return files[task.kind]


def decode(task: Task, raw: Tensor, input_size: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """One image's prediction from its raw head output, in the pixels of the original image.

    The model saw the image resized to ``input_size``; ``size`` is the image's own ``(H, W)``.
    ``cls`` gives probabilities, other kinds ``task.predict``: dense outputs are resized
    (bilinear) to ``size`` first, ``det`` boxes are mapped to ``size`` after decoding.
    """
    raw = raw.detach().float().cpu()
    if task.kind == "cls":
        return torch.softmax(raw, dim=0)
    if task.dense and tuple(raw.shape[-2:]) != tuple(size):
        raw = F.interpolate(raw[None], size=size, mode="bilinear", align_corners=False)[0]
    prediction = task.predict(raw[None])[0]
    if task.kind == "det":
        return boxes_to_image(prediction, input_size, size)
    return prediction


def write_prediction(
    task: Task,
    prediction: Tensor,
    out_dir: Path,
    name: str,
    names: Sequence[str] | None,
    top_k: int,
    image: Tensor,
) -> dict[str, Any]:
    """Write ``task``'s decoded ``prediction`` (see ``decode``) for the image called ``name``.

    ``image`` is the input image (RGB ``[3, H, W]`` in [0, 1]) that ``det`` draws its boxes on.
    Returns the record of the prediction (image-level tasks) or of the files written.
    """
    files = output_files(task, name)
    if task.kind == "cls":
        return _classification(prediction, names, top_k)
    if task.kind == "multilabel":
        return _multilabel(prediction, names)
    if task.kind == "det":
        write_json(out_dir / files[0], detection_records(prediction, names))
        Image.fromarray(task.draw_on_image(image, prediction)[0]).save(out_dir / files[1])
        return {"files": files, "boxes": len(prediction)}
    if task.kind == "seg":
        index = prediction.numpy().astype(np.int64)
        Image.fromarray(picture_rgb(task, prediction)).save(out_dir / files[0])
        raw = index.astype(np.uint8) if index.max(initial=0) < 256 else index.astype(np.uint16)
        Image.fromarray(raw).save(out_dir / files[1])
    elif task.kind == "depth":
        depth = prediction[0].numpy().astype(np.float32)
        Image.fromarray((depth * DEPTH_PNG_SCALE).round().clip(0, 65535).astype(np.uint16)).save(out_dir / files[0])
        np.save(out_dir / files[1], depth)
    elif task.kind == "normals":
        Image.fromarray(picture_rgb(task, prediction)).save(out_dir / files[0])
    else:  # edges
        Image.fromarray((prediction[0].numpy() * 255.0).round().clip(0, 255).astype(np.uint8)).save(out_dir / files[0])
    return {"files": files}


def _classification(probs: Tensor, names: Sequence[str] | None, top_k: int) -> dict[str, Any]:
    values, indices = probs.topk(min(top_k, probs.numel()))
    best = int(indices[0])
    return {
        "class": best,
        "name": _label(best, names),
        "probability": float(values[0]),
        "top_k": [
            {"class": int(i), "name": _label(int(i), names), "probability": float(v)} for v, i in zip(values, indices)
        ],
    }


def _multilabel(probs: Tensor, names: Sequence[str] | None) -> dict[str, Any]:
    return {
        "labels": [_label(i, names) for i, p in enumerate(probs.tolist()) if p >= MULTILABEL_THRESHOLD],
        "probabilities": {_label(i, names): float(p) for i, p in enumerate(probs.tolist())},
    }


def csv_columns(task: Task) -> list[str]:
    """The columns of ``predictions.csv`` for ``task`` (image-level tasks only)."""
    if task.kind == "cls":
        return [task.name, f"{task.name}_probability", f"{task.name}_top_k"]
    if task.kind == "multilabel":
        return [task.name]
    return []


def csv_values(task: Task, record: dict[str, Any]) -> list[str]:
    """``task``'s cells of one row of ``predictions.csv``."""
    if task.kind == "cls":
        top = "|".join(f"{e['name']}:{e['probability']:.4f}" for e in record["top_k"])
        return [record["name"], f"{record['probability']:.6f}", top]
    if task.kind == "multilabel":
        return [";".join(record["labels"])]
    return []
