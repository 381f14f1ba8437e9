"""torch's Muon with its bfloat16 cast removed: the reference for ``ll.optim.muon(ns_dtype=None)``.

``torch.optim.Muon`` runs its Newton-Schulz iterations in bfloat16 whatever the parameter dtype
(``ortho_grad = grad.bfloat16()``). :func:`zeropower_via_newtonschulz_full_precision` is torch's
``_zeropower_via_newtonschulz`` line for line without that cast, and :class:`MuonFullPrecision`
is ``torch.optim.Muon`` with it swapped in for the duration of each ``step()``; everything else
(momentum, Nesterov, lr adjustment, weight decay) is torch's own code.
"""

from __future__ import annotations

from unittest import mock

import torch
from torch import Tensor


def zeropower_via_newtonschulz_full_precision(grad: Tensor, ns_coefficients: tuple[float, float, float],
                                              ns_steps: int, eps: float) -> Tensor:
  """torch 2.14's ``torch.optim._muon._zeropower_via_newtonschulz`` without ``grad.bfloat16()``."""
  if ns_steps >= 100:
    raise ValueError("Number of steps must be less than 100 for computational efficiency")
  if len(grad.shape) != 2:
    raise ValueError("Input tensor gradient must be a 2D matrix")
  if len(ns_coefficients) != 3:
    raise ValueError("Coefficients must be a tuple of exactly 3 values")
  a, b, c = ns_coefficients
  ortho_grad = grad.clone()                  # torch: grad.bfloat16()
  if grad.size(0) > grad.size(1):
    ortho_grad = ortho_grad.T
  ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
  for _ in range(ns_steps):
    gram_matrix = ortho_grad @ ortho_grad.T
    gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
    ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
  if grad.size(0) > grad.size(1):
    ortho_grad = ortho_grad.T
  return ortho_grad


class MuonFullPrecision(torch.optim.Muon):
  """``torch.optim.Muon`` whose Newton-Schulz iterations run in the parameter dtype."""

  @torch.no_grad()
  def step(self, closure=None):
    import torch.optim._muon as muon_module

    if not hasattr(muon_module, "_zeropower_via_newtonschulz"):
      raise RuntimeError("parity.reference.muon: torch.optim._muon._zeropower_via_newtonschulz is gone;"
                         " update this reference to the installed torch")
    with mock.patch.object(muon_module, "_zeropower_via_newtonschulz",
                           zeropower_via_newtonschulz_full_precision):
      return super().step(closure)
