"""Torch reference for ``losslab_jax.losses.contrastive_loss``, written from the math with torch ops."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class ContrastiveLoss(torch.nn.Module):
  r"""Contrastive loss (Hadsell, Chopra, LeCun 2006, without the factor 1/2).

  .. math::
     d_i = \mathrm{pairwise\_distance}(x1_i, x2_i) = \lVert x1_i - x2_i + 10^{-6} \rVert_2, \qquad
     \ell_i = (1 - y_i)\, d_i^2 + y_i \max(0, \text{margin} - d_i)^2

  ``y = 0`` marks a similar pair, ``y = 1`` a dissimilar one. ``reduction`` is ``"none"``,
  ``"mean"`` (over pairs) or ``"sum"``.
  """

  def __init__(self, margin: float = 1.0, reduction: str = "mean"):
    super().__init__()
    if reduction not in ("none", "mean", "sum"):
      raise ValueError(f"ContrastiveLoss: unknown reduction {reduction!r}")
    self.margin = margin
    self.reduction = reduction

  def forward(self, input1: torch.Tensor, input2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = F.pairwise_distance(input1, input2)  # p=2, eps=1e-6
    if not target.is_floating_point():
      target = target.to(d.dtype)
    loss = (1 - target) * d.pow(2) + target * torch.clamp_min(self.margin - d, 0).pow(2)
    if self.reduction == "mean":
      return loss.mean()
    if self.reduction == "sum":
      return loss.sum()
    return loss
