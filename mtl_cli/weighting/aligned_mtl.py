"""Aligned-MTL: independent component alignment (Senushkin et al., CVPR 2023)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import Tensor

from mtl_cli.weighting.base import StepContext
from mtl_cli.weighting.gradients import GradientOptions, GradientWeighting


class Scale(enum.Enum):
    """The common singular value the aligned gradients get."""

    min = "min"
    median = "median"
    rmse = "rmse"


@dataclass
class AlignedMTLOptions(GradientOptions):
    scale: Scale = Scale.min  # the paper's choice: the smallest singular value


def alignment_matrix(gram: Tensor, scale: str = "min") -> Tensor:
    """B (k, k) with ``B G`` the aligned gradients: ``B = sigma K^{-1/2}`` on the range of K.

    ``B G = sigma U V^T`` for ``G = U S V^T``: every singular value becomes ``sigma``
    (condition number 1), so the aligned task gradients are orthogonal with equal norms.
    Directions with eigenvalues below 1e-10 of the largest are dropped.
    """
    K = gram.to(torch.float64)
    eigenvalues, vectors = torch.linalg.eigh(K)
    keep = eigenvalues > 1e-10 * eigenvalues[-1].clamp_min(1e-300)
    singular = torch.where(keep, eigenvalues, torch.ones_like(eigenvalues)).sqrt()
    mode = Scale(scale)
    if mode is Scale.min:
        sigma = torch.where(keep, singular, torch.full_like(singular, float("inf"))).min()
    elif mode is Scale.median:
        sigma = _masked_median(singular, keep)
    else:
        sigma = (torch.where(keep, eigenvalues, torch.zeros_like(eigenvalues)).sum() / keep.sum().clamp_min(1)).sqrt()
    inverse_roots = torch.where(keep, 1.0 / singular, torch.zeros_like(singular))
    return sigma * (vectors * inverse_roots) @ vectors.T


def _masked_median(values: Tensor, mask: Tensor) -> Tensor:
    """Lower median of ``values[mask]`` without a data-dependent shape (no host synchronisation)."""
    filled = torch.where(mask, values, torch.full_like(values, float("inf")))
    ordered = filled.sort().values
    return ordered[((mask.sum() - 1) // 2).clamp_min(0)]


def aligned_mtl_weights(gram: Tensor, scale: str = "min") -> Tensor:
    """Weights of the sum of the aligned task gradients: ``B^T 1`` (equal task weights)."""
    B = alignment_matrix(gram, scale)
    return B.sum(dim=0).to(gram.dtype)


class AlignedMTL(GradientWeighting):
    """Align the task gradients' principal components to one scale, then sum them."""

    options_class = AlignedMTLOptions

    def combine(self, grads: Tensor, gram: Tensor, losses: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        assert isinstance(self.options, AlignedMTLOptions)
        return aligned_mtl_weights(gram, self.options.scale.value), grads
