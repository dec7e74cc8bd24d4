"""The multi-scale dense decoder: every architecture and backbone feeds it all stages, exactly."""

from __future__ import annotations

import pytest
import torch
from models.helpers import ARCHS, batch, losses, model

from mtl_cli.models import build_backbone
from mtl_cli.models.architectures.common import pack
from mtl_cli.models.heads import DenseDecoder, DenseHead
from mtl_cli.weighting.gradients import check_representation

BACKBONES = ["small_cnn", "resnet18", "mobilenet_v3_small"]


@pytest.mark.parametrize("name", BACKBONES)
def test_decoder_fuses_every_stage_at_the_finest_resolution(name):
    backbone = build_backbone(name, width=8)
    x = torch.randn(2, 3, 64, 64)
    outputs = []
    for stage in backbone.stages:
        x = stage(x)
        outputs.append(x)
    decoder = DenseDecoder(backbone.stage_channels, 32)
    fused = decoder(outputs)
    assert fused.shape == (2, 16, *outputs[0].shape[-2:])
    fused.sum().backward()
    # every scale contributes: each lateral convolution gets a gradient
    assert all(lateral.weight.grad.abs().sum() > 0 for lateral in decoder.laterals)


def test_depth_head_starts_at_the_given_offset_in_units_of_the_scale():
    head = DenseHead([8, 16], 16, 1, offset=10.0, scale=3.0)
    with torch.no_grad():
        head.projection.out.weight.zero_()
        head.projection.out.bias.fill_(0.5)
    out = head([torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4)], (16, 16))
    torch.testing.assert_close(out, torch.full((2, 1, 16, 16), 11.5))


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_and_backbone_gives_dense_outputs_reaching_all_stages(arch, backbone):
    if arch == "mtan" and backbone == "mobilenet_v3_small":
        pytest.skip("mtan refuses single-block stages (tested in test_architectures)")
    combo = ("cls", "seg")
    torch.manual_seed(0)
    net = model(arch, combo, backbone=backbone)
    data = batch(combo)
    preds = net(data["image"])
    assert preds["seg"].shape == (4, 5, 32, 32) and preds["cls"].shape == (4, 4)
    loss = losses(net, preds, data)[1]
    loss.backward()
    head = net.heads["seg"] if arch != "shared_weights" else net
    decoder = head.decoder
    assert len(decoder.laterals) == len(build_backbone(backbone, width=8).stage_names)
    assert all(lateral.weight.grad.abs().sum() > 0 for lateral in decoder.laterals)


@pytest.mark.parametrize("branch_at", [None, "stem", "layer1", "decoder"])
@pytest.mark.parametrize("combo", [("cls", "seg"), ("seg", "depth"), ("cls", "multilabel")], ids="+".join)
def test_shared_layers_representation_carries_all_of_the_shared_gradient(combo, branch_at):
    """``grad_on=features`` is exact: the losses reach the shared parameters only through it."""
    torch.manual_seed(0)
    net = model("shared_layers", combo, branch_at=branch_at)
    data = batch(combo)
    preds, features = net(data["image"], return_features=True)
    for name, pred in net(data["image"]).items():
        torch.testing.assert_close(pred, preds[name])  # packing does not change the predictions
    task_losses = list(losses(net, preds, data))
    check_representation(task_losses, features, net.shared_parameters())  # raises if any gradient bypasses it
    for loss in task_losses:
        (grad,) = torch.autograd.grad(loss, features, retain_graph=True)
        assert grad.abs().sum() > 0


def test_shared_stages_are_packed_when_the_heads_read_several():
    images = batch(("cls", "seg"))["image"]
    dense = model("shared_layers", ("cls", "seg"))
    _, packed = dense(images, return_features=True)
    shared = []
    x = images
    for stage in dense.trunk:
        x = stage(x)
        shared.append(x)
    assert packed.shape == (4, sum(s[0].numel() for s in shared))
    torch.testing.assert_close(packed, pack(shared)[0])
    _, image_level = model("shared_layers", ("cls", "multilabel"))(images, return_features=True)
    assert image_level.shape == packed.shape  # image-level heads fuse every stage too
