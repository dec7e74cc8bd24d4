"""mtl-export: ONNX and TorchScript outputs equal PyTorch's for every architecture, any batch size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from inference.helpers import ALL_TASKS, write_checkpoint

from mtl_cli.errors import UserError
from mtl_cli.inference.export import OUTPUT_MEANINGS, export_model, export_size, sidecar
from mtl_cli.inference.loading import load_trained_model
from mtl_cli.models import ARCHITECTURES

TOLERANCE = 1e-4


def _reference(trained, images):
    with torch.no_grad():
        outputs = trained.model(images)
    return [outputs[t.name].numpy() for t in trained.tasks]


def _check_exports_match_pytorch(tmp_path, arch: str, tasks=ALL_TASKS) -> None:
    """Export ``arch`` once per format; both files give PyTorch's outputs for batches of 1 and 3."""
    ort = pytest.importorskip("onnxruntime")
    trained = load_trained_model(write_checkpoint(tmp_path / "model.pt", arch, tasks=tasks))
    size = export_size(trained, None)
    onnx_meta = export_model(trained, "onnx", None, size)
    ts_meta = export_model(trained, "torchscript", tmp_path / "out" / "model.ts", size)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == [t.name for t in trained.tasks]
    scripted = torch.jit.load(str(tmp_path / "out" / "model.ts"))
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 3):
        images = torch.randn(batch, 3, *size, generator=generator)
        expected = _reference(trained, images)
        for got, want in zip(session.run(None, {"image": images.numpy()}), expected):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)
        with torch.no_grad():
            for got, want in zip(scripted(images), expected):
                np.testing.assert_allclose(got.numpy(), want, atol=TOLERANCE, rtol=0)
    meta = json.loads(onnx_meta.read_text())
    assert meta["input"]["shape"] == ["N", 3, *size] and meta["model_file"] == "model.onnx"
    assert [o["name"] for o in meta["outputs"]] == [t.name for t in trained.tasks]
    assert json.loads(ts_meta.read_text())["model_format"] == "torchscript"


def test_onnx_and_torchscript_match_pytorch(tmp_path):
    _check_exports_match_pytorch(tmp_path, "shared_layers", tasks=("cls", "seg", "det"))


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_exports_with_pytorchs_outputs(tmp_path, arch):
    _check_exports_match_pytorch(tmp_path, arch)


def test_sidecar_describes_every_output(tmp_path):
    trained = load_trained_model(write_checkpoint(tmp_path / "model.pt"))
    meta = sidecar(trained, "onnx", tmp_path / "model.onnx", (32, 32))
    by_name = {o["name"]: o for o in meta["outputs"]}
    assert by_name["seg"]["shape"] == "[N, 5, 32, 32]"
    assert by_name["seg"]["classes"] == ["background", "circle", "square", "triangle", "star"]
    assert by_name["cls"]["classes"] == ["circle", "square", "triangle", "star"]
    assert by_name["depth"]["classes"] is None
    assert meta["input"]["mean"] == [0.5, 0.5, 0.5] and meta["input"]["std"] == [0.25, 0.25, 0.25]


def test_task_the_export_cannot_describe_is_refused(tmp_path, monkeypatch):
    trained = load_trained_model(write_checkpoint(tmp_path / "model.pt", tasks=("cls", "depth")))
    monkeypatch.delitem(OUTPUT_MEANINGS, "depth")
    with pytest.raises(UserError, match="task depth is of kind depth, whose output mtl-export cannot describe"):
        export_model(trained, "torchscript", tmp_path / "m.ts", (32, 32))
    assert not (tmp_path / "m.ts").exists()


def test_export_refuses_to_overwrite_and_bad_settings(tmp_path):
    trained = load_trained_model(write_checkpoint(tmp_path / "model.pt", tasks=("cls",)))
    export_model(trained, "torchscript", tmp_path / "m.ts", (32, 32))
    with pytest.raises(UserError, match="already exists; choose another output= or set overwrite=true"):
        export_model(trained, "torchscript", tmp_path / "m.ts", (32, 32))
    export_model(trained, "torchscript", tmp_path / "m.ts", (32, 32), overwrite=True)
    with pytest.raises(UserError, match="format=tflite: choose one of onnx, torchscript"):
        export_model(trained, "tflite", None, (32, 32))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        export_model(trained, "torchscript", tmp_path / "afile" / "m.ts", (32, 32))
    with pytest.raises(UserError, match="size=32: give the input size as HxW"):
        export_size(trained, "32")
    assert export_size(trained, "48x64") == (48, 64)


@pytest.mark.e2e
def test_export_cli_reports_a_foreign_checkpoint_in_one_line(tmp_path):
    torch.save({"model": {}}, tmp_path / "other.pt")
    proc = run_cli("mtl_cli.export", [f"ckpt={tmp_path / 'other.pt'}", "format=onnx"], tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"mtl-export: error: checkpoint {tmp_path / 'other.pt'} is not an mtl_cli checkpoint"
