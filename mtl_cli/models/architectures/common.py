"""What the architectures share: branch points and copies of backbone stages."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from mtl_cli.errors import UserError
from mtl_cli.models.backbones import Backbone

BackboneFactory = Callable[[], Backbone]
"""Builds a fresh backbone (own initialisation, pretrained weights loaded if configured)."""


def resolve_branch(names: Sequence[str], branch_at: str | int | None, default: int) -> int:
    """How many of the stages ``names`` are shared for ``arch.branch_at``.

    ``None`` gives ``default``; a stage name or a stage index shares the stages up to and
    including that one. Raises ``UserError`` listing the stages for anything else.
    """
    if branch_at is None or branch_at == "null":
        return default
    listing = ", ".join(f"{i}={n}" for i, n in enumerate(names))
    text = str(branch_at)
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(names):
            raise UserError(f"arch.branch_at={branch_at}: there is no stage {index}; the stages are {listing}")
        return index + 1
    if text not in names:
        raise UserError(f"arch.branch_at={branch_at}: the network has no such stage; its stages are {listing}")
    return list(names).index(text) + 1


def stage_copies(backbone: Backbone, make_backbone: BackboneFactory, start: int, count: int) -> list[nn.Sequential]:
    """``count`` copies of ``backbone.stages[start:]``, each initialised like a new backbone.

    The first copy is ``backbone``'s own stages; the others come from fresh backbones, so
    each copy is independently initialised (or starts from the same pretrained weights).
    """
    if start >= len(backbone.stages):  # nothing to copy: no backbone needs building
        return [nn.Sequential() for _ in range(count)]
    sources = [backbone] + [make_backbone() for _ in range(count - 1)]
    return [nn.Sequential(*source.stages[start:]) for source in sources[:count]]


def run_stages(stages: Iterable[nn.Module], x: Tensor) -> list[Tensor]:
    """The output of every stage of ``stages`` applied in order to ``x``."""
    outputs = []
    for stage in stages:
        x = stage(x)
        outputs.append(x)
    return outputs


def pack(tensors: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """One ``[B, D]`` tensor holding ``tensors`` (all batch first), and views of it shaped like them.

    A model whose heads read several shared feature maps computes them from the views,
    so the packed tensor is a single shared representation: the gradient of the losses
    with respect to it holds the gradient with respect to every one of the maps.
    """
    flat = torch.cat([t.flatten(1) for t in tensors], dim=1)
    sizes = [t[0].numel() for t in tensors]
    views = [v.view(t.shape) for v, t in zip(flat.split(sizes, dim=1), tensors)]
    return flat, views


def trunk_outputs(trunk: nn.Sequential, images: Tensor, packed: bool) -> tuple[Tensor, list[Tensor]]:
    """The shared features and the stage outputs of ``trunk`` on ``images``.

    The shared features are the last stage's output, or, with ``packed`` and several
    stages, all the outputs packed into one tensor (``pack``) whose views are returned
    as the stage outputs, so that the heads read the shared features.
    """
    outputs = run_stages(trunk, images)
    if packed and len(outputs) > 1:
        return pack(outputs)
    return outputs[-1], outputs
