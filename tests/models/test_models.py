"""Backbones and the shared-layers model: output shapes, sharing and bad input."""

from __future__ import annotations

import pytest
import torch

from mtl_cli.errors import UserError
from mtl_cli.models import build_backbone
from mtl_cli.models.architectures.shared_layers import SharedLayersModel
from mtl_cli.tasks import build_task

INFO = {"cls": {"num_classes": 4}, "seg": {"num_classes": 5}, "multilabel": {"num_classes": 4}}


def tasks(*names):
    return [build_task(n, {"kind": n}, INFO.get(n, {})) for n in names]


@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "mobilenet_v3_small"])
def test_backbone_stages_report_their_channels(name):
    backbone = build_backbone(name, width=8)
    x = torch.randn(2, 3, 64, 64)
    for stage, channels in zip(backbone.stages, backbone.stage_channels):
        x = stage(x)
        assert x.shape[1] == channels


def test_predictions_have_task_shapes():
    model = SharedLayersModel(
        lambda: build_backbone("small_cnn", width=8), tasks("cls", "seg", "depth", "normals", "edges", "multilabel")
    )
    out, features = model(torch.randn(2, 3, 32, 32), return_features=True)
    assert out["cls"].shape == (2, 4)
    assert out["seg"].shape == (2, 5, 32, 32)
    assert out["depth"].shape == (2, 1, 32, 32)
    assert out["normals"].shape == (2, 3, 32, 32)
    assert out["edges"].shape == (2, 1, 32, 32)
    assert out["multilabel"].shape == (2, 4)
    # dense heads read every shared stage (skip connections): the representation packs them all
    assert features.shape == (2, 8 * 16 * 16 + 16 * 8 * 8 + 32 * 4 * 4)


def test_branch_point_copies_later_stages_per_task():
    backbone = build_backbone("small_cnn", width=8)
    shared_all = SharedLayersModel(lambda: build_backbone("small_cnn", width=8), tasks("cls", "seg"))
    branched = SharedLayersModel(lambda: build_backbone("small_cnn", width=8), tasks("cls", "seg"), branch_at="stem")
    later = sum(p.numel() for s in backbone.stages[1:] for p in s.parameters())
    assert branched.parameter_counts()["total"] == shared_all.parameter_counts()["total"] + later
    shared_ids = {id(p) for p in branched.shared_parameters()}
    assert not shared_ids & {id(p) for p in branched.task_parameters("cls")}
    counts = branched.parameter_counts()
    assert counts["shared"] + counts["cls"] + counts["seg"] == counts["total"]


def test_unknown_branch_point_lists_stages():
    with pytest.raises(UserError, match="0=stem, 1=layer1, 2=layer2, 3=decoder"):
        SharedLayersModel(lambda: build_backbone("small_cnn", width=8), tasks("cls"), branch_at="layer7")


def test_unknown_backbone_lists_known():
    with pytest.raises(UserError, match="resnet18"):
        build_backbone("vgg")


def test_local_pretrained_weights_are_loaded(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    backbone = build_backbone("resnet18", pretrained=str(path))
    assert torch.equal(backbone.stages[0][0].weight, reference.conv1.weight)


def test_missing_pretrained_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        build_backbone("resnet18", pretrained=str(tmp_path / "nope.pth"))
