"""Convergence detection on a loss history (patience and tolerance)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from losslab_jax._internal import _checks
from losslab_jax.analysis._results import ConvergenceResult


def check_convergence(losses: ArrayLike, patience: int = 10, tolerance: float = 1e-6) -> ConvergenceResult:
  r"""Whether a loss history has stopped improving: ``patience`` steps without a real improvement.

  Walks the history once, the way ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (``mode="min"``,
  ``threshold_mode="abs"``) and early-stopping callbacks do: a step *improves* when its loss is
  below the best loss so far by more than ``tolerance``; otherwise it counts as a bad step. The
  history has converged once the last ``patience`` steps were all bad, and every loss is finite.

  .. math::
     \text{improves}_t = \big[\ell_t < b_{t-1} - \text{tolerance}\big], \quad
     b_t = \ell_t \text{ if improves}_t \text{ else } b_{t-1}, \quad b_{-1} = +\infty,

  and ``steps_since_improvement`` counts the steps since the last :math:`t` that improved.

  Args:
    losses: the loss per step (or epoch), shape ``[T]``; a list of floats or an array.
    patience: how many steps without improvement mean convergence, ``>= 1``. At least
      ``patience + 1`` losses are needed to converge.
    tolerance: the smallest decrease that counts as an improvement, a number ``>= 0`` (absolute).

  Returns:
    A :class:`ConvergenceResult`: ``converged``, ``diverged`` (some loss is NaN or infinite),
    ``best_loss``, ``best_step``, ``steps_since_improvement``, ``final_loss``.

  Raises:
    ValueError: ``losses`` is not 1-D, ``patience < 1`` or ``tolerance < 0``.

  Notes:
    Torch twin: ``ReduceLROnPlateau(mode="min", threshold=tolerance, threshold_mode="abs")``
    tracks the same best loss, and its ``num_bad_epochs`` equals ``steps_since_improvement``
    after every step; it acts once the count *exceeds* its patience, one step after
    ``converged`` first becomes true here. A steadily *rising* loss also stops improving:
    ``converged`` means "no further progress", so read it together with ``diverged`` and the
    curve. jit-safe: the walk is a ``lax.scan``.
    Parity: no torch twin; tests use hand-made histories.

  Examples:
    >>> bool(check_convergence([3.0, 2.0, 1.0, 1.0, 1.0], patience=2).converged)
    True
    >>> int(check_convergence([3.0, 2.0, 1.0, 1.0, 0.5], patience=2).steps_since_improvement)
    0
  """
  fn = "check_convergence"
  if not isinstance(patience, (int, np.integer)) or isinstance(patience, bool) or patience < 1:
    raise ValueError(f"{fn}: expected `patience` an int >= 1, got {patience!r}")
  if not _checks.is_concrete(tolerance) or not float(tolerance) >= 0:
    raise ValueError(f"{fn}: expected `tolerance` a number >= 0, got {tolerance!r}")
  x = jnp.asarray(losses)
  if x.ndim != 1:
    raise ValueError(f"{fn}: expected `losses` with shape [T], got shape {x.shape}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.result_type(float))
  return _convergence_jit(x, patience=int(patience), tolerance=float(tolerance))


def _convergence(x: jax.Array, *, patience: int, tolerance: float) -> ConvergenceResult:
  tol = jnp.asarray(tolerance, x.dtype)

  def step(carry, item):
    best, best_step, bad = carry
    t, loss = item
    improves = loss < best - tol
    carry = (jnp.where(improves, loss, best), jnp.where(improves, t, best_step),
             jnp.where(improves, 0, bad + 1))
    return carry, None

  init = (jnp.asarray(jnp.inf, x.dtype), jnp.asarray(-1, jnp.int32), jnp.asarray(0, jnp.int32))
  steps = jnp.arange(x.shape[0], dtype=jnp.int32)
  (best, best_step, bad), _ = jax.lax.scan(step, init, (steps, x))
  diverged = jnp.any(~jnp.isfinite(x))
  final = x[-1] if x.shape[0] else jnp.asarray(jnp.nan, x.dtype)
  return ConvergenceResult(
      converged=(bad >= patience) & ~diverged,
      diverged=diverged,
      best_loss=best,
      best_step=best_step,
      steps_since_improvement=bad,
      final_loss=final,
      patience=patience,
      tolerance=tolerance,
  )


_convergence_jit = jax.jit(_convergence, static_argnames=("patience", "tolerance"))
