"""What the architectures share: branch points and copies of backbone stages."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

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
