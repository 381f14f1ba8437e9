"""Result types of the analysis tools: small frozen dataclasses registered as pytrees.

Array fields are pytree children, so a result passes through ``jax.jit``, ``jax.vmap`` and
``jax.device_get``; configuration (thresholds, dims, the normalisation mode) is static metadata.
Field names follow what practitioners know from the PyTorch analysers (``current_loss``,
``loss_std``, ``loss_range``, ``loss_variance``; ``total_gradient_norm``, ``loss_value``,
``gradient_stats``; ``converged``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np


def _static(**kw: Any) -> Any:
  return dataclasses.field(metadata=dict(static=True), **kw)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LandscapeResult:
  """What :func:`loss_landscape` returns.

  Attributes:
    alphas: grid coordinates along the first direction, shape ``[num_points]``, from ``-span``
      to ``span``, exactly 0 at the centre.
    betas: grid coordinates along the second direction, shape ``[num_points]`` (``dims=2``),
      or ``None`` (``dims=1``).
    losses: ``L(theta + alpha d1)`` with shape ``[num_points]`` (``dims=1``), or
      ``L(theta + alpha_i d1 + beta_j d2)`` at ``losses[i, j]``, shape ``[num_points, num_points]``.
    directions: the normalised directions ``(d1,)`` or ``(d1, d2)``, each a pytree like ``params``.
    current_loss: ``L(theta)``, scalar.
    loss_std: standard deviation of ``losses`` over the grid (``ddof=0``, numpy's default).
    loss_variance: ``loss_std ** 2``.
    loss_min: smallest loss on the grid.
    loss_max: largest loss on the grid.
    loss_range: ``loss_max - loss_min``.
    curvature: second central difference of the loss at the centre along each direction,
      ``(L(+h) - 2 L(0) + L(-h)) / h^2`` with ``h`` the grid step, shape ``[dims]``; the
      directional second derivative ``d^T H d`` of the loss in the limit ``h -> 0``.
    sharpness: Keskar et al.'s sharpness of the grid box (without their factor 100),
      ``(loss_max - current_loss) / (1 + |current_loss|)``, scalar.
    dims: 1 or 2 (static).
    normalize: ``"filter"``, ``"layer"`` or ``None`` (static).
  """

  alphas: jax.Array
  betas: jax.Array | None
  losses: jax.Array
  directions: tuple[Any, ...]
  current_loss: jax.Array
  loss_std: jax.Array
  loss_variance: jax.Array
  loss_min: jax.Array
  loss_max: jax.Array
  loss_range: jax.Array
  curvature: jax.Array
  sharpness: jax.Array
  dims: int = _static(default=1)
  normalize: str | None = _static(default="filter")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LayerGradientStats:
  """Gradient statistics of one leaf (one layer's weight or bias) in :class:`GradientFlowResult`.

  Attributes:
    norm: L2 norm ``||g||_2``.
    mean: mean of the entries.
    std: standard deviation of the entries (``ddof=0``, numpy's default; torch's
      ``Tensor.std()`` uses ``ddof=1``).
    max_abs: ``max |g|``.
    vanishing: ``norm < vanishing_threshold``.
    exploding: ``norm > exploding_threshold``.
    shape: the leaf's shape (static).
  """

  norm: jax.Array
  mean: jax.Array
  std: jax.Array
  max_abs: jax.Array
  vanishing: jax.Array
  exploding: jax.Array
  shape: tuple[int, ...] = _static(default=())


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GradientFlowResult:
  """What :func:`gradient_flow` returns.

  Attributes:
    loss_value: the loss at ``params``.
    total_gradient_norm: the global L2 norm over every leaf, ``sqrt(sum_l ||g_l||^2)`` (what
      ``torch.nn.utils.clip_grad_norm_`` measures).
    gradient_stats: ``{name: LayerGradientStats}``, one entry per leaf of ``params``, named by
      its path (``"dense/kernel"``).
    num_vanishing: how many leaves have ``norm < vanishing_threshold``.
    num_exploding: how many leaves have ``norm > exploding_threshold``.
    vanishing_threshold: the threshold used (static).
    exploding_threshold: the threshold used (static).
  """

  loss_value: jax.Array
  total_gradient_norm: jax.Array
  gradient_stats: dict[str, LayerGradientStats]
  num_vanishing: jax.Array
  num_exploding: jax.Array
  vanishing_threshold: float = _static(default=1e-6)
  exploding_threshold: float = _static(default=1e3)

  def vanishing_layers(self) -> list[str]:
    """Names of the leaves flagged as vanishing (needs concrete values: call outside ``jit``)."""
    return [name for name, s in self.gradient_stats.items() if bool(np.asarray(s.vanishing))]

  def exploding_layers(self) -> list[str]:
    """Names of the leaves flagged as exploding (needs concrete values: call outside ``jit``)."""
    return [name for name, s in self.gradient_stats.items() if bool(np.asarray(s.exploding))]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ConvergenceResult:
  """What :func:`check_convergence` returns.

  Attributes:
    converged: ``steps_since_improvement >= patience`` and every loss is finite.
    diverged: some loss in the history is NaN or infinite.
    best_loss: the best loss, counting only improvements by more than ``tolerance``.
    best_step: the index of ``best_loss`` (``-1`` for an empty history).
    steps_since_improvement: steps after ``best_step`` (torch's ``num_bad_epochs``).
    final_loss: the last loss (NaN for an empty history).
    patience: the patience used (static).
    tolerance: the tolerance used (static).
  """

  converged: jax.Array
  diverged: jax.Array
  best_loss: jax.Array
  best_step: jax.Array
  steps_since_improvement: jax.Array
  final_loss: jax.Array
  patience: int = _static(default=10)
  tolerance: float = _static(default=1e-6)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SharpnessResult:
  """What :func:`sharpness` returns.

  Attributes:
    max_eigenvalue: the Rayleigh quotient ``v^T H v`` of the final iterate, the Hessian's
      eigenvalue of largest magnitude (signed).
    eigenvector: the unit-norm iterate ``v``, a pytree like ``params``.
    eigenvalue_history: the Rayleigh quotient after each iteration, shape ``[iters]``.
    residual: ``||H v - max_eigenvalue v||_2``; small once the iteration has converged.
  """

  max_eigenvalue: jax.Array
  eigenvector: Any
  eigenvalue_history: jax.Array
  residual: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LRRangeResult:
  """What :func:`lr_range_test` returns.

  Attributes:
    lrs: the learning rate of each step, shape ``[num_steps]``, exponential from ``min_lr``
      to ``max_lr``.
    losses: ``losses[k]`` is the loss before step ``k`` (the loss whose gradient step ``k``
      applies with ``lrs[k]``); NaN after the step where the test diverged.
    smoothed_losses: bias-corrected exponential moving average of ``losses``; NaN after
      divergence.
    suggested_lr: the learning rate where the smoothed loss falls fastest per unit of
      ``log(lr)`` (NaN if no step qualifies).
    suggested_index: its step index (``-1`` if none).
    lr_at_min_loss: the learning rate of the smallest smoothed loss (a common rule of thumb
      is a tenth of it).
    min_loss_index: its step index.
    diverged: whether the smoothed loss exceeded ``diverge_factor`` times its best, or a loss
      was not finite.
    diverged_at: the step where that first happened (``-1`` if never).
  """

  lrs: jax.Array
  losses: jax.Array
  smoothed_losses: jax.Array
  suggested_lr: jax.Array
  suggested_index: jax.Array
  lr_at_min_loss: jax.Array
  min_loss_index: jax.Array
  diverged: jax.Array
  diverged_at: jax.Array
