"""mtl-predict: a tiny trained run predicts on a folder of images of several sizes and a corrupt file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, run_cli, run_dirs
from inference.helpers import write_checkpoint
from PIL import Image

from mtl_cli.errors import UserError
from mtl_cli.inference.images import find_images
from mtl_cli.inference.predict import PredictSettings, run_prediction

SIZES = {"a.jpg": (40, 50), "b.png": (64, 64), "sub/c.png": (20, 30)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run of every shapes task, one tiny epoch, trained through the CLI."""
    root = tmp_path_factory.mktemp("train")
    args = [*TINY, "trainer.epochs=1", "trainer.vis_images=0", "task=cls+seg+depth+normals+edges+multilabel+det"]
    run_cli("mtl_cli.train", args, cwd=root)
    (found,) = run_dirs(root)
    return found


@pytest.fixture
def ckpt(tmp_path) -> Path:
    """A tiny untrained checkpoint of every shapes task (no training run needed)."""
    return write_checkpoint(tmp_path / "model.pt")


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name, (h, w) in SIZES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    return folder


def _check_outputs(out: Path) -> None:
    for name, (h, w) in [("a", SIZES["a.jpg"]), ("b", SIZES["b.png"]), ("sub__c", SIZES["sub/c.png"])]:
        colour, index = Image.open(out / f"{name}.seg.png"), Image.open(out / f"{name}.seg.index.png")
        assert colour.mode == "RGB" and colour.size == (w, h)
        assert index.mode == "L" and index.size == (w, h) and np.asarray(index).max() < 5
        depth_png = Image.open(out / f"{name}.depth.png")
        assert depth_png.mode.startswith("I;16") and depth_png.size == (w, h)
        depth = np.load(out / f"{name}.depth.npy")
        assert depth.dtype == np.float32 and depth.shape == (h, w)
        normals = Image.open(out / f"{name}.normals.png")
        assert normals.mode == "RGB" and normals.size == (w, h)
        edges = Image.open(out / f"{name}.edges.png")
        assert edges.mode == "L" and edges.size == (w, h)
        boxes = json.loads((out / f"{name}.det.json").read_text())
        for box in boxes:
            x1, y1, x2, y2 = box["box"]
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h  # in the original image's pixels
            assert box["name"] == ("circle", "square", "triangle", "star")[box["class"]] and 0 < box["score"] <= 1
        overlay = Image.open(out / f"{name}.det.png")
        scale = -(-128 // max(h, w))  # small images are drawn upscaled, as in val_predictions.png
        assert overlay.mode == "RGB" and overlay.size == (w * scale, h * scale)
        assert Image.open(out / f"{name}.overview.png").format == "PNG"
    assert not list(out.glob("broken*"))
    table = json.loads((out / "predictions.json").read_text())
    assert [row["name"] for row in table["images"]] == ["a", "b", "sub__c"]
    first = table["images"][0]
    assert first["size"] == [40, 50]
    cls = first["tasks"]["cls"]
    assert cls["name"] in ("circle", "square", "triangle", "star") and len(cls["top_k"]) == 4
    assert abs(sum(e["probability"] for e in cls["top_k"]) - 1.0) < 1e-5
    assert set(first["tasks"]["multilabel"]["probabilities"]) == {"circle", "square", "triangle", "star"}
    assert first["tasks"]["det"] == {
        "files": ["a.det.json", "a.det.png"],
        "boxes": len(json.loads((out / "a.det.json").read_text())),
    }
    assert list(table["skipped"]) == [str(Path(table["images"][0]["image"]).parent / "broken.jpg")]
    with (out / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["cls"] for r in rows] == [row["tasks"]["cls"]["name"] for row in table["images"]]
    assert set(rows[0]) == {"image", "cls", "cls_probability", "cls_top_k", "multilabel"}


@pytest.mark.e2e
@pytest.mark.slow
def test_predict_cli_on_a_folder(run_dir, images, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("mtl_cli.predict", [f"ckpt={run_dir}", f"input={images}", f"output={out}", "batch_size=2"], tmp_path)
    assert f"mtl-predict: warning: skipped {images / 'broken.jpg'}: not a readable image" in proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == (
        f"3 image(s) predicted, 1 skipped (unreadable or unsupported); results in {out}"
    )
    _check_outputs(out)
    again = run_cli("mtl_cli.predict", [f"ckpt={run_dir}", f"input={images}", f"output={out}"], tmp_path, check=False)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith("mtl-predict: error: output=")
    assert "set overwrite=true" in again.stderr


def test_predict_on_a_folder_writes_every_output(ckpt, images, tmp_path):
    out = tmp_path / "out"
    result = run_prediction(PredictSettings(str(ckpt), str(images), str(out), batch_size=2, progress=False))
    assert result.predicted == 3 and list(result.skipped) == [str(images / "broken.jpg")]
    _check_outputs(out)


def test_overwrite_and_output_checks(ckpt, images, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.seg.png").write_text("keep me")
    settings = PredictSettings(str(ckpt), str(images / "b.png"), str(out), progress=False)
    with pytest.raises(UserError, match=r"already holds 1 of the files .*b.seg.png.*overwrite=true"):
        run_prediction(settings)
    assert (out / "b.seg.png").read_text() == "keep me"
    settings.overwrite = True
    result = run_prediction(settings)
    assert result.predicted == 1 and not result.skipped
    assert Image.open(out / "b.seg.png").size == (64, 64)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="output=.*file is a file; give a folder"):
        run_prediction(PredictSettings(str(ckpt), str(images), str(tmp_path / "file"), progress=False))


@pytest.mark.e2e
def test_predict_cli_usage_errors(tmp_path):
    proc = run_cli("mtl_cli.predict", ["ckpt=nowhere", "input=x"], tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "mtl-predict: error: output= missing; see mtl-predict --help"
    proc = run_cli("mtl_cli.predict", ["ckpt=nowhere", "input=x", "output=o", "batchsize=3"], tmp_path, check=False)
    assert proc.returncode == 2 and "batchsize= is not a setting of mtl-predict" in proc.stderr


def test_glob_names_are_relative_and_unique(images, tmp_path):
    Image.new("RGB", (4, 4)).save(images / "a.png")
    found = find_images(str(images / "**" / "*.*"))
    names = {f.path.relative_to(images).as_posix(): f.name for f in found}
    assert names == {"a.jpg": "a_jpg", "a.png": "a_png", "b.png": "b", "broken.jpg": "broken", "sub/c.png": "sub__c"}
    with pytest.raises(UserError, match="no such file or folder"):
        find_images(str(tmp_path / "missing"))
