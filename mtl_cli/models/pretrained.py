"""Pretrained backbone weights: torchvision's published weights or a local state-dict file.

``backbone.weights=DEFAULT|IMAGENET1K_V1|...`` goes through torchvision's weights API: the
file is downloaded once into the torch hub cache (``$TORCH_HOME/hub/checkpoints``) and read
from there afterwards, so offline runs work once the file is in place.
``backbone.pretrained=<file>`` loads a local state dict and must match the network
exactly, unless ``backbone.allow_partial=true``.
"""

from __future__ import annotations

import logging
import urllib.error
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtl_cli.errors import UserError

log = logging.getLogger("mtl_cli")

# Parameters of torchvision classifiers that the backbones drop (the classification layer).
UNUSED_PREFIXES = ("fc.", "classifier.")


def torchvision_weights(model_name: str, weights_name: str) -> Any:
    """torchvision's weights enum member ``weights_name`` for ``model_name`` (``UserError`` if unknown)."""
    from torchvision.models import get_model_weights

    try:
        options = get_model_weights(model_name)
    except (ValueError, KeyError) as exc:
        raise UserError(f"backbone.weights: torchvision publishes no weights for {model_name}") from exc
    if weights_name not in options.__members__:
        raise UserError(
            f"backbone.weights={weights_name}: not a weights name of {model_name}; "
            f"choose one of {', '.join(options.__members__)}"
        )
    return options[weights_name]


def weights_normalization(model_name: str, weights_name: str) -> tuple[list[float], list[float]]:
    """The image mean and std the weights were trained with."""
    transform = torchvision_weights(model_name, weights_name).transforms()
    return [float(m) for m in transform.mean], [float(s) for s in transform.std]


def cache_file(url: str) -> Path:
    """Where torch's hub cache keeps the file downloaded from ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def load_torchvision_weights(net: nn.Module, model_name: str, weights_name: str) -> None:
    """Load torchvision's ``weights_name`` weights into ``net``, downloading them into the cache if needed."""
    weights = torchvision_weights(model_name, weights_name)
    target = cache_file(weights.url)
    try:
        state = weights.get_state_dict(progress=True)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise UserError(
            f"backbone.weights={weights_name}: {weights.url} could not be downloaded ({exc.__class__.__name__}); "
            f"offline, put that file as {target} (the torch cache, under $TORCH_HOME) and run again"
        ) from exc
    except Exception as exc:  # torch raises several types for an unreadable cached file
        raise UserError(
            f"backbone.weights={weights_name}: the cached file {target} cannot be read "
            f"({exc.__class__.__name__}); delete it and download it again"
        ) from exc
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"backbone.weights={weights_name}: the cached file {target} does not fit {model_name}") from exc


def compare_state_dicts(own: Mapping[str, torch.Tensor], given: Mapping[str, Any]) -> dict[str, list[str]]:
    """The ``missing``, ``unexpected`` and ``mismatched`` (shape) keys of ``given`` against ``own``.

    Missing keys of the layers the backbones drop (``UNUSED_PREFIXES``) do not count.
    """
    missing = [k for k in own if k not in given and not k.startswith(UNUSED_PREFIXES)]
    unexpected = [k for k in given if k not in own]
    mismatched = [
        k for k in given if k in own and (not isinstance(given[k], torch.Tensor) or given[k].shape != own[k].shape)
    ]
    return {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}


def _describe(report: Mapping[str, list[str]]) -> str:
    parts = []
    for what, keys in report.items():
        if keys:
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            parts.append(f"{len(keys)} {what} ({shown})")
    return "; ".join(parts)


def load_weights_file(net: nn.Module, path: str, allow_partial: bool = False) -> None:
    """Load the state dict in ``path`` into ``net``; a partial match needs ``allow_partial``."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"backbone.pretrained={path}: no such file; give a local .pth state dict or null")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable files
        raise UserError(
            f"backbone.pretrained={path}: not a readable PyTorch weights file ({exc.__class__.__name__})"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"backbone.pretrained={path}: the file holds no state dict")
    own = net.state_dict()
    report = compare_state_dicts(own, state)
    matched = {k: v for k, v in state.items() if k in own and k not in report["mismatched"]}
    if not matched:
        raise UserError(f"backbone.pretrained={path}: no tensor in it matches this backbone's layers")
    if any(report.values()):
        if not allow_partial:
            raise UserError(
                f"backbone.pretrained={path} only partly matches the backbone: {_describe(report)}; "
                f"set backbone.allow_partial=true to load the {len(matched)} matching tensors anyway"
            )
        log.warning("backbone.pretrained=%s: loading %d matching tensors; %s", path, len(matched), _describe(report))
    net.load_state_dict(matched, strict=False)
