"""Regression losses: l1, mse (more are added alongside)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from losslab_jax._internal import _checks
from losslab_jax._internal._reduction import reduce
from losslab_jax._internal._typing import Reduction
from losslab_jax.losses._common import prepare_pair


def l1_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = "mean") -> jax.Array:
  r"""Mean absolute error.

  .. math::
     \ell_i = |x_i - y_i|

  Args:
    input: predictions ``x``, any shape, floating.
    target: targets ``y``, same shape as ``input``, floating.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the dtype of ``input``.

  Raises:
    TypeError: ``input`` or ``target`` is not floating.
    ValueError: shapes differ, or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.l1_loss``. Difference: mismatched shapes raise instead of
    broadcasting with a warning. The gradient at ``x == y`` is 0, as torch's ``sign``.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``l1_loss``).

  Examples:
    >>> import jax.numpy as jnp
    >>> float(l1_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0])))  # (1 + 2) / 2
    1.5
  """
  fn = "l1_loss"
  _checks.check_reduction(fn, reduction)
  x, y, dtype = prepare_pair(fn, input, target)
  return reduce(jnp.abs(x - y), reduction).astype(dtype)


def mse_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = "mean") -> jax.Array:
  r"""Mean squared error.

  .. math::
     \ell_i = (x_i - y_i)^2

  Args:
    input: predictions ``x``, any shape, floating.
    target: targets ``y``, same shape as ``input``, floating.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the dtype of ``input``.

  Raises:
    TypeError: ``input`` or ``target`` is not floating.
    ValueError: shapes differ, or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.mse_loss``. Unlike ``optax.l2_loss`` there is no factor 1/2.
    Difference: mismatched shapes raise instead of broadcasting with a warning.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``mse_loss``).

  Examples:
    >>> import jax.numpy as jnp
    >>> float(mse_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0])))  # (1 + 4) / 2
    2.5
  """
  fn = "mse_loss"
  _checks.check_reduction(fn, reduction)
  x, y, dtype = prepare_pair(fn, input, target)
  return reduce(jnp.square(x - y), reduction).astype(dtype)
