"""The multi-scale dense decoder: every architecture and backbone feeds it every stage of stride 4 and coarser."""

from __future__ import annotations

import pytest
import torch
from models.helpers import ARCHS, batch, losses, model

from mtl_cli.models import build_backbone
from mtl_cli.models.architectures.common import pack
from mtl_cli.models.heads import FINEST_STRIDE, DenseDecoder, DenseHead, skipped_scales
from mtl_cli.weighting.gradients import check_representation

BACKBONES = ["small_cnn", "resnet18", "mobilenet_v3_small"]


@pytest.mark.parametrize("name", BACKBONES)
def test_decoder_fuses_every_stage_of_stride_four_and_coarser_at_stride_four(name):
    backbone = build_backbone(name, width=8)
    x = torch.randn(2, 3, 64, 64)
    outputs = []
    for stage in backbone.stages:
        x = stage(x)
        outputs.append(x)
    assert [64 // out.shape[-1] for out in outputs] == backbone.stage_strides
    decoder = DenseDecoder(backbone.stage_channels, 32, backbone.stage_strides)
    fused = decoder(outputs)
    assert fused.shape == (2, 16, 64 // FINEST_STRIDE, 64 // FINEST_STRIDE)
    fused.sum().backward()
    # every scale of stride >= 4 contributes: each lateral convolution gets a gradient
    assert len(decoder.laterals) == sum(s >= FINEST_STRIDE for s in backbone.stage_strides)
    assert all(lateral.weight.grad.abs().sum() > 0 for lateral in decoder.laterals)


def test_decoder_without_strides_fuses_every_map_at_the_finest():
    decoder = DenseDecoder([4, 8], 16)
    fused = decoder([torch.randn(1, 4, 16, 16), torch.randn(1, 8, 8, 8)])
    assert fused.shape == (1, 8, 16, 16) and len(decoder.laterals) == 2


def test_skipped_scales_passes_over_maps_finer_than_stride_four_but_never_the_deepest():
    assert skipped_scales([2, 4, 8], 3) == 1
    assert skipped_scales([4, 4, 8, 16, 32], 5) == 0
    assert skipped_scales([2, 2], 2) == 1
    assert skipped_scales(None, 3) == 0
    with pytest.raises(ValueError, match="strides"):
        skipped_scales([2, 4], 3)


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
    strides = build_backbone(backbone, width=8).stage_strides
    assert len(decoder.laterals) == sum(s >= FINEST_STRIDE for s in strides)
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
