"""A task kind defined outside the library trains end to end: tasks own their kind.

``BrightnessTask`` (per-pixel grey level, L1 loss, mean-absolute-error metric) exists only
in this file. It is registered with ``register_task_kind`` and trained through the CLI on
a folder dataset with scale-crop and flip augmentation, without changing a library file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from conftest import cli_env
from PIL import Image
from torch import Tensor

from mtl_cli.data import MultiTaskCollate
from mtl_cli.data.checks import check_array, check_range
from mtl_cli.data.labels import label_specs
from mtl_cli.data.transforms import Augment, JointTransform
from mtl_cli.tasks import TASK_KINDS, Task
from mtl_cli.tasks.base import map_target, masked_mean, sample_mask
from mtl_cli.tasks.geometry import Geometry
from mtl_cli.tasks.labels import LabelSpec
from mtl_cli.tasks.metrics import MetricAccumulator

SIZE = (16, 20)


class BrightnessMetrics(MetricAccumulator):
    """Mean absolute grey-level error over the labelled pixels."""

    higher_is_better: ClassVar[dict[str, bool]] = {"mae": False}
    _sum_states = ("abs_sum", "count")

    def _init_state(self, device: torch.device) -> None:
        self.abs_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.float64, device=device)

    def update(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> None:
        pred, target, valid = self._begin_update(pred, target, valid)
        mask = self._sample_mask(torch.ones_like(target, dtype=torch.bool), valid)
        self.abs_sum += ((pred.double() - target.double()).abs() * mask).sum()
        self.count += mask.sum()

    def compute(self) -> dict[str, float]:
        if self._device is None or float(self.count) == 0:
            return {"mae": float("nan")}
        return {"mae": float(self.abs_sum / self.count)}


class BrightnessTask(Task):
    """Toy per-pixel regression: the grey level in [0, 1] of every pixel, stored as an [H, W] ``.npy``."""

    kind = "brightness"
    dense = True
    primary_metric = "mae"
    transform_calls: ClassVar[int] = 0

    @property
    def out_channels(self) -> int:
        return 1

    def loss(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        return masked_mean((pred.float() - target).abs(), sample_mask(valid, target))

    def metrics(self) -> BrightnessMetrics:
        return BrightnessMetrics()

    @classmethod
    def missing_label(cls, spec: LabelSpec, size: tuple[int, int]) -> Tensor:
        return torch.zeros((1, *size))

    @classmethod
    def label_from_array(cls, spec: LabelSpec, array: np.ndarray, path: Path, size: tuple[int, int]) -> Tensor:
        check_array(array, path, [size], "f", f"{spec.name} grey levels aligned with the image")
        check_range(array, path, 0.0, 1.0, "grey levels")
        return map_target(array)

    @classmethod
    def transform_label(cls, spec: LabelSpec, target: Tensor, geometry: Geometry) -> Tensor:
        cls.transform_calls += 1
        return geometry.mirror(geometry.bilinear(target))


def _write_folder(root: Path, n_train: int = 8, n_val: int = 4) -> Path:
    """Images, a 3-class seg map and the brightness label (the image's grey level) per image."""
    rng = np.random.default_rng(0)
    h, w = SIZE
    for split, n in (("train", n_train), ("val", n_val)):
        for sub in ("images", "seg", "brightness"):
            (root / split / sub).mkdir(parents=True)
        for i in range(n):
            image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / split / "images" / f"img_{i}.png")
            Image.fromarray(rng.integers(0, 3, size=(h, w)).astype(np.uint8)).save(
                root / split / "seg" / f"img_{i}.png"
            )
            np.save(root / split / "brightness" / f"img_{i}.npy", (image.mean(axis=2) / 255.0).astype(np.float32))
    return root


@pytest.fixture
def registered(monkeypatch):
    """``brightness`` in the task registry of this process for one test."""
    monkeypatch.setitem(TASK_KINDS, BrightnessTask.kind, BrightnessTask)
    monkeypatch.setattr(BrightnessTask, "transform_calls", 0)


def test_the_augmentation_moves_the_new_label_with_the_image(registered):
    """Scale-crop + flip reach the new kind's ``transform_label``: the label stays the image's grey level."""
    specs = label_specs({"brightness": {}}, ["brightness"], {"brightness": {"kind": "brightness"}})
    assert specs["brightness"].task_class is BrightnessTask and specs["brightness"].dense
    h, w = SIZE
    grey = torch.linspace(0, 1, w).expand(h, w) * torch.linspace(0.2, 1, h).view(h, 1)  # no mirror symmetry
    transform = JointTransform(specs, Augment(scale=(1.3, 1.8), hflip=True), [0.0] * 3, [1.0] * 3)
    flips = 0
    for seed in range(8):
        item = {"image": grey.expand(3, h, w).clone(), "brightness": grey[None].clone()}
        out = transform(item, torch.Generator().manual_seed(seed))
        assert not torch.equal(out["brightness"], grey[None])  # the label was cropped and resized
        assert torch.allclose(out["brightness"][0], out["image"][0], atol=1e-6)  # ... exactly like the image
        flips += bool(out["brightness"][0, 0, 0] > out["brightness"][0, 0, -1])  # grey rises left to right
    assert BrightnessTask.transform_calls == 8
    assert 0 < flips < 8  # some samples were flipped, some not


def test_variable_length_labels_batch_as_lists():
    """A kind with per-image box lists collates them as a list, which ``to_device`` moves element by element."""

    class BoxListTask(BrightnessTask):
        def collate(self, targets):
            return list(targets)

    task = BoxListTask("boxes", {})
    items = [{"image": torch.zeros(3, 4, 4), "boxes": torch.rand(n, 4), "valid": {"boxes": n > 0}} for n in (2, 0, 3)]
    batch = MultiTaskCollate([task])(items)
    assert [boxes.shape for boxes in batch["boxes"]] == [(2, 4), (0, 4), (3, 4)]
    assert batch["valid"]["boxes"].tolist() == [True, False, True]
    moved = task.to_device(batch["boxes"], torch.device("meta"))
    assert isinstance(moved, list) and [b.device.type for b in moved] == ["meta"] * 3
    assert [b.shape for b in moved] == [(2, 4), (0, 4), (3, 4)]


def test_a_task_kind_defined_outside_the_library_trains_through_the_cli(tmp_path):
    """Register ``brightness`` in an entry script, then ``mtl-train task=brightness+seg`` on a folder."""
    root = _write_folder(tmp_path / "mine")
    entry = tmp_path / "train_plugin.py"
    entry.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]\n"
        "from test_new_task_kind import BrightnessTask\n"
        "from mtl_cli.tasks import register_task_kind\n"
        "register_task_kind(BrightnessTask)\n"
        "from mtl_cli.train import main\n"
        "main()\n"
    )
    run_dir = tmp_path / "run"
    args = [
        "data=folder",
        f"data.root={root}",
        "task=brightness+seg",
        "data.tasks.seg.num_classes=3",
        "+data.tasks.brightness={}",
        "data.augment.scale=[1.0,1.5]",
        "data.augment.hflip=true",
        "trainer.epochs=1",
        "trainer.batch_size=4",
        "trainer.vis_images=2",
        "trainer.progress=false",
        "backbone.width=8",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.run(
        [sys.executable, str(entry), *args], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert list(summary["metrics"]) == ["seg", "brightness"]  # canonical order: built-in kinds first
    mae = summary["metrics"]["brightness"]["mae"]
    assert 0.0 <= mae < 1.0
    assert (run_dir / "val_predictions.png").is_file()  # the generic grid drew the new kind
