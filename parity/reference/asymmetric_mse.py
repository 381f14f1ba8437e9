"""Torch reference for ``losslab_jax.losses.asymmetric_mse_loss``, written from the math with torch ops."""

from __future__ import annotations

import torch


class AsymmetricMSELoss(torch.nn.Module):
  r"""Squared error weighted by the sign of the error.

  .. math::
     e_i = x_i - y_i, \qquad
     \ell_i = \begin{cases} \text{under\_penalty}\cdot e_i^2 & e_i < 0 \\
                            \text{over\_penalty}\cdot e_i^2 & e_i \ge 0 \end{cases}

  ``reduction`` is ``"none"``, ``"mean"`` (over all elements) or ``"sum"``.
  """

  def __init__(self, under_penalty: float = 2.0, over_penalty: float = 1.0, reduction: str = "mean"):
    super().__init__()
    if reduction not in ("none", "mean", "sum"):
      raise ValueError(f"AsymmetricMSELoss: unknown reduction {reduction!r}")
    if under_penalty < 0 or over_penalty < 0:
      raise ValueError("AsymmetricMSELoss: penalties must be >= 0")
    self.under_penalty = under_penalty
    self.over_penalty = over_penalty
    self.reduction = reduction

  def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    error = input - target
    penalty = torch.where(error < 0, error.new_full((), self.under_penalty),
                          error.new_full((), self.over_penalty))
    loss = penalty * error.pow(2)
    if self.reduction == "mean":
      return loss.mean()
    if self.reduction == "sum":
      return loss.sum()
    return loss
