"""Softmax focal loss as a torch module, written from Lin et al. (2017), torch layout ``(N, C, *)``."""

from __future__ import annotations

import torch
from torch import nn


class FocalLoss(nn.Module):
  r"""``-alpha_y (1 - p_y)^gamma log p_y`` per target, ``p = softmax(input, dim=1)``.

  Args:
    gamma: focusing exponent ``>= 0``.
    alpha: None (no weighting), a float, or a tensor of per-class weights ``(C,)``.
    ignore_index: targets equal to it contribute 0 and are not counted by the mean.
    reduction: ``"none"`` (shape of ``target``) | ``"mean"`` (sum over the number of kept
      targets, not over alpha) | ``"sum"``.

  Input ``(N, C, d1, ..., dk)`` or ``(N, C)`` logits; target ``(N, d1, ..., dk)`` class indices.
  """

  def __init__(self, gamma: float = 2.0, alpha=None, ignore_index: int = -100, reduction: str = "mean"):
    super().__init__()
    self.gamma = gamma
    self.alpha = alpha
    self.ignore_index = ignore_index
    self.reduction = reduction

  def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    keep = target != self.ignore_index
    index = torch.where(keep, target, torch.zeros_like(target)).unsqueeze(1)
    prob = torch.softmax(input, dim=1).gather(1, index).squeeze(1)
    log_prob = torch.log_softmax(input, dim=1).gather(1, index).squeeze(1)
    loss = -((1.0 - prob) ** self.gamma) * log_prob
    if self.alpha is not None:
      alpha = torch.as_tensor(self.alpha, dtype=input.dtype)
      loss = loss * (alpha if alpha.ndim == 0 else alpha[index.squeeze(1)])
    loss = torch.where(keep, loss, torch.zeros_like(loss))
    if self.reduction == "none":
      return loss
    if self.reduction == "sum":
      return loss.sum()
    return loss.sum() / keep.sum().to(input.dtype)
