"""Soft multi-class dice loss as a torch module, written from the formula, torch layout ``(N, C, *)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DiceLoss(nn.Module):
  r"""``1 - mean_c (2 sum_s p t + smooth) / (sum_s p + sum_s t + smooth)`` per sample.

  Args:
    smooth: added to numerator and denominator of every class's dice score.
    from_logits: apply ``softmax(input, dim=1)`` first; otherwise ``input`` holds probabilities.
    reduction: ``"none"`` (shape ``(N,)``) | ``"mean"`` (over the batch) | ``"sum"``.

  Input ``(N, C, *)``; target integer ``(N, *)`` labels or floating ``(N, C, *)`` one-hot/soft.
  """

  def __init__(self, smooth: float = 1.0, from_logits: bool = True, reduction: str = "mean"):
    super().__init__()
    self.smooth = smooth
    self.from_logits = from_logits
    self.reduction = reduction

  def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    n, c = input.shape[:2]
    prob = torch.softmax(input, dim=1) if self.from_logits else input
    if target.is_floating_point():
      onehot = target
    else:
      onehot = F.one_hot(target, c).movedim(-1, 1).to(input.dtype)
    prob = prob.reshape(n, c, -1)
    onehot = onehot.reshape(n, c, -1)
    numerator = 2.0 * (prob * onehot).sum(-1) + self.smooth
    denominator = prob.sum(-1) + onehot.sum(-1) + self.smooth
    loss = 1.0 - (numerator / denominator).mean(1)
    if self.reduction == "none":
      return loss
    if self.reduction == "sum":
      return loss.sum()
    return loss.mean()
