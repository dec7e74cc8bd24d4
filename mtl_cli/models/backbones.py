"""Backbones by name: a shared feature extractor split into named stages.

Every backbone is a ``Backbone``: a list of stages (``stem``, ``layer1``, ...) applied in
order, with the number of output channels and the output stride (input size over output
size) of each. Sharing architectures cut or copy these stages; heads read their outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from mtl_cli.errors import UserError
from mtl_cli.models.pretrained import load_torchvision_weights, load_weights_file


class Backbone(nn.Module):
    """A feature extractor as an ordered list of named stages; ``name`` is its registry name.

    ``stage_channels`` and ``stage_strides`` give each stage's output channels and output
    stride (2 = half the input resolution).
    """

    name: str = "custom"

    def __init__(self, stages: list[nn.Module], names: list[str], channels: list[int], strides: list[int]) -> None:
        super().__init__()
        if not (len(stages) == len(names) == len(channels) == len(strides)):
            raise ValueError("stages, names, channels and strides must have the same length")
        self.stages = nn.ModuleList(stages)
        self.stage_names = list(names)
        self.stage_channels = list(channels)
        self.stage_strides = list(strides)

    @property
    def out_channels(self) -> int:
        return self.stage_channels[-1]

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def small_cnn(width: int = 24) -> Backbone:
    """A small, fast CNN for CPU runs: output stride 8, ``4 * width`` channels."""
    w = width
    stages = [
        _conv_bn_relu(3, w, stride=2),
        nn.Sequential(_conv_bn_relu(w, 2 * w, stride=2), _conv_bn_relu(2 * w, 2 * w)),
        nn.Sequential(_conv_bn_relu(2 * w, 4 * w, stride=2), _conv_bn_relu(4 * w, 4 * w)),
    ]
    return Backbone(stages, ["stem", "layer1", "layer2"], [w, 2 * w, 4 * w], [2, 4, 8])


def _torchvision_model(
    name: str, pretrained: str | None = None, weights: str | None = None, allow_partial: bool = False
) -> nn.Module:
    """``torchvision.models.<name>``, with published ``weights`` or a local ``pretrained`` file loaded."""
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)
    if weights:
        load_torchvision_weights(net, name, weights)
    elif pretrained:
        load_weights_file(net, pretrained, allow_partial)
    return net


def _resnet(name: str) -> Callable[..., Backbone]:
    def build(
        pretrained: str | None = None, weights: str | None = None, allow_partial: bool = False, **_: object
    ) -> Backbone:
        net = _torchvision_model(name, pretrained, weights, allow_partial)
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        layers = [net.layer1, net.layer2, net.layer3, net.layer4]
        channels = [net.conv1.out_channels] + [_last_channels(layer) for layer in layers]
        names = ["stem", "layer1", "layer2", "layer3", "layer4"]
        return Backbone([stem, *layers], names, channels, [4, 4, 8, 16, 32])

    return build


def _mobilenet(name: str) -> Callable[..., Backbone]:
    def build(
        pretrained: str | None = None, weights: str | None = None, allow_partial: bool = False, **_: object
    ) -> Backbone:
        net = _torchvision_model(name, pretrained, weights, allow_partial)
        return _split_by_stride(list(net.features))

    return build


def _last_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def _split_by_stride(blocks: list[nn.Module]) -> Backbone:
    """Group consecutive blocks that share an output resolution into one stage each."""
    probe = 64
    x = torch.zeros(1, 3, probe, probe)
    groups: list[list[nn.Module]] = []
    channels: list[int] = []
    strides: list[int] = []
    size = None
    with torch.no_grad():
        for block in blocks:
            was_training = block.training
            block.eval()
            x = block(x)
            block.train(was_training)
            if x.shape[-1] != size:
                groups.append([])
                channels.append(0)
                strides.append(probe // x.shape[-1])
                size = x.shape[-1]
            groups[-1].append(block)
            channels[-1] = x.shape[1]
    names = ["stem"] + [f"layer{i}" for i in range(1, len(groups))]
    return Backbone([nn.Sequential(*g) for g in groups], names, channels, strides)


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "small_cnn": lambda width=24, **_: small_cnn(width),
    "resnet18": _resnet("resnet18"),
    "resnet34": _resnet("resnet34"),
    "resnet50": _resnet("resnet50"),
    "mobilenet_v3_small": _mobilenet("mobilenet_v3_small"),
    "mobilenet_v3_large": _mobilenet("mobilenet_v3_large"),
}


def build_backbone(
    name: str, pretrained: str | None = None, width: int = 24, weights: str | None = None, allow_partial: bool = False
) -> Backbone:
    """Build the backbone registered as ``name``, with ``weights`` (torchvision's) or a ``pretrained`` file."""
    if name not in BACKBONES:
        raise UserError(f"unknown backbone '{name}'; known backbones: {', '.join(BACKBONES)}")
    if name == "small_cnn" and (pretrained or weights):
        raise UserError(
            "backbone.pretrained and backbone.weights are not supported for small_cnn (it has no published weights)"
        )
    if pretrained and weights:
        raise UserError("backbone.pretrained and backbone.weights both set; choose one source of initial weights")
    backbone = BACKBONES[name](pretrained=pretrained, width=width, weights=weights, allow_partial=allow_partial)
    backbone.name = name
    return backbone
