"""Class weights for imbalanced data."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from losslab_jax._internal import _checks, _dtypes


def class_weights(labels: ArrayLike, num_classes: int) -> jax.Array:
  r"""Inverse-frequency class weights, ``N / (K * count_k)``.

  The "balanced" weighting for an imbalanced training set: pass the result as ``weight=`` to
  :func:`cross_entropy` or ``nll_loss`` (or as ``alpha=`` to ``focal_loss``). With :math:`N`
  labels, :math:`K` classes (``num_classes``) and :math:`n_k` labels equal to :math:`k`,

  .. math::
     w_k = \frac{N}{K\, n_k},

  so a balanced data set gets all weights 1 and :math:`\sum_k w_k n_k = N`.

  Args:
    labels: integer class labels in ``[0, K)``, any shape (flattened; :math:`N` = its size).
    num_classes: :math:`K`, a static Python int ``>= 1``; it fixes the output shape, so the
      function is jittable with ``num_classes`` static.

  Returns:
    Weights of shape ``[K]``, in the default floating dtype (float32, or float64 with x64).
    A class with no labels gets ``inf`` (:math:`N / 0`), as the plain torch calculation
    ``N / (K * bincount(labels).float())`` does; map it to 0 with
    ``jnp.where(jnp.isinf(w), 0.0, w)`` if absent classes should be ignored. Empty ``labels``
    give NaN everywhere.

  Raises:
    TypeError: ``labels`` is not integer, or ``num_classes`` is not an int.
    ValueError: ``num_classes < 1``. A label outside ``[0, K)`` raises when the call is eager;
      under ``jit`` every weight is NaN, and :func:`losslab_jax.losses.checked` reports it.

  Notes:
    Torch twin: none (the torch idiom above, with ``K = num_classes`` instead of
    ``len(bincount(labels))``; scikit-learn's ``compute_class_weight("balanced")`` gives the same
    numbers where every class is present). Tested against a numpy reference.

  Examples:
    >>> import jax.numpy as jnp
    >>> # N = 8, K = 4, counts (1, 1, 2, 4): 8/4, 8/4, 8/8, 8/16
    >>> class_weights(jnp.array([0, 1, 2, 2, 3, 3, 3, 3]), 4).tolist()
    [2.0, 2.0, 1.0, 0.5]
  """
  fn = "class_weights"
  if not isinstance(num_classes, int) or isinstance(num_classes, bool):
    raise TypeError(f"{fn}: expected `num_classes` to be a Python int, got {num_classes!r}")
  _checks.check_positive(fn, "num_classes", num_classes)
  y = jnp.asarray(labels)
  _checks.check_integer(fn, "labels", y, "cast them with `.astype(jnp.int32)`")
  y = y.reshape(-1)
  in_range = (y >= 0) & (y < num_classes)
  _checks.value_check(fn, in_range, f"expected labels in [0, {num_classes}), got values outside")
  dtype = _dtypes.result_float_dtype()
  counts = jnp.sum(y[:, None] == jnp.arange(num_classes)[None, :], axis=0, dtype=dtype)
  weights = jnp.asarray(y.size, dtype) / (num_classes * counts)
  return jnp.where(jnp.all(in_range), weights, jnp.full_like(weights, jnp.nan))
