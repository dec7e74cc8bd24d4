"""Pretrained backbones: torchvision weights from the torch cache, local files matched strictly."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from conftest import TINY, read_summary, run_cli, run_dirs
from omegaconf import OmegaConf

from mtl_cli.config import validate
from mtl_cli.errors import UserError
from mtl_cli.models import build_backbone

CACHED_NAME = "resnet18-f37072fd.pth"  # basename of torchvision's ResNet18_Weights.IMAGENET1K_V1 url


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_weights_are_read_from_the_torch_cache(torch_home):
    reference = torchvision.models.resnet18(weights=None)
    cache = torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / CACHED_NAME)
    backbone = build_backbone("resnet18", weights="DEFAULT")
    assert torch.equal(backbone.stages[0][0].weight, reference.conv1.weight)
    assert torch.equal(backbone.stages[4][1].conv2.weight, reference.layer4[1].conv2.weight)


def test_offline_without_cached_file_names_the_file(torch_home, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    expected = torch_home / "hub" / "checkpoints" / CACHED_NAME
    with pytest.raises(UserError, match=f"offline, put that file as {expected}"):
        build_backbone("resnet18", weights="IMAGENET1K_V1")


def test_unknown_weights_name_lists_the_known(torch_home):
    with pytest.raises(UserError, match="choose one of IMAGENET1K_V1, DEFAULT"):
        build_backbone("resnet18", weights="IMAGENET1K_V9")
    with pytest.raises(UserError, match="not supported for small_cnn"):
        build_backbone("small_cnn", weights="DEFAULT")


def test_partial_local_file_is_refused_unless_allowed(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    del state["layer4.1.conv2.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(
        UserError, match=r"1 missing \(layer4.1.conv2.weight\); 1 unexpected \(extra.weight\).*allow_partial"
    ):
        build_backbone("resnet18", pretrained=str(path))
    backbone = build_backbone("resnet18", pretrained=str(path), allow_partial=True)
    assert torch.equal(backbone.stages[1][0].conv1.weight, state["layer1.0.conv1.weight"])


def test_classifier_layer_may_be_absent_from_a_local_file(tmp_path):
    state = {k: v for k, v in torchvision.models.resnet18(weights=None).state_dict().items() if not k.startswith("fc.")}
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    backbone = build_backbone("resnet18", pretrained=str(path))
    assert torch.equal(backbone.stages[0][0].weight, state["conv1.weight"])


def _config(**data):
    return OmegaConf.create(
        {"tasks": {"cls": {"kind": "cls"}}, "backbone": {"name": "resnet18", "weights": "DEFAULT"}, "data": data}
    )


def test_normalisation_follows_the_weights_unless_the_data_config_opts_out():
    cfg = validate(_config())
    assert list(cfg.data.mean) == pytest.approx([0.485, 0.456, 0.406])
    assert list(cfg.data.std) == pytest.approx([0.229, 0.224, 0.225])
    kept = validate(_config(normalize_from_weights=False, mean=[0.1, 0.2, 0.3]))
    assert list(kept.data.mean) == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.e2e
@pytest.mark.slow
def test_train_with_cached_weights_records_their_normalisation(torch_home, tmp_path):
    cache = torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), cache / CACHED_NAME)
    args = [*TINY, "data.num_train=16", "data.num_val=8", "trainer.epochs=1", "trainer.vis_images=0"]
    run_cli("mtl_cli.train", [*args, "task=cls", "backbone=resnet18", "backbone.weights=DEFAULT"], cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    data = read_summary(run)["config"]["data"]
    assert data["mean"] == pytest.approx([0.485, 0.456, 0.406]) and data["std"] == pytest.approx([0.229, 0.224, 0.225])
