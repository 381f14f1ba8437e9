"""Regression losses: l1, mse, huber, smooth l1, asymmetric mse."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from losslab_jax._internal import _checks
from losslab_jax._internal._reduction import reduce
from losslab_jax._internal._typing import Reduction
from losslab_jax.losses._common import abs_torch_grad, prepare_pair


_abs = abs_torch_grad  # |d| with torch's gradient sign(d): 0 at d == 0, +-1 at +-inf


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
  return reduce(_abs(x - y), reduction).astype(dtype)


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


def _huber_elementwise(d: jax.Array, delta: float) -> jax.Array:
  z = _abs(d)
  inside = z < delta
  zq = jnp.where(inside, z, jnp.zeros_like(z))  # double where: no inf * 0 from the unused branch
  return jnp.where(inside, 0.5 * zq * zq, delta * (z - 0.5 * delta))


def huber_loss(
    input: ArrayLike, target: ArrayLike, *, reduction: Reduction = "mean", delta: float = 1.0
) -> jax.Array:
  r"""Huber loss: squared error near zero, ``delta``-scaled absolute error beyond ``delta``.

  Robust regression: quadratic (like MSE) for residuals smaller than :math:`\delta`, linear (like
  L1, with slope :math:`\delta`) for larger ones, so outliers pull with a bounded force.

  .. math::
     d_i = x_i - y_i, \qquad
     \ell_i = \begin{cases} \tfrac12 d_i^2 & |d_i| < \delta \\
                            \delta\,(|d_i| - \tfrac12 \delta) & \text{otherwise} \end{cases}

  Args:
    input: predictions ``x``, any shape, floating.
    target: targets ``y``, same shape as ``input``, floating.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.
    delta: the threshold :math:`\delta > 0` where the loss turns linear; a static Python number
      (under ``jit`` close over it; a traced value raises ``TypeError``).

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the dtype of ``input``.

  Raises:
    TypeError: ``input`` or ``target`` is not floating.
    TypeError: ``delta`` is traced or not a number.
    ValueError: shapes differ, ``delta <= 0``, or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.huber_loss``; equal to ``optax.losses.huber_loss``
    elementwise. The gradient is torch's: :math:`d` inside, :math:`\delta\,\mathrm{sign}(d)` outside
    (:math:`\pm\delta` at :math:`d = \pm\infty` too), 0 at :math:`d = 0`. Differences: mismatched shapes raise instead of broadcasting with a
    warning; torch's newer ``weight=`` keyword is not part of this API.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``huber_loss``).

  Examples:
    >>> import jax.numpy as jnp
    >>> float(huber_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0])))  # (0.125 + 2.5) / 2
    1.3125
  """
  fn = "huber_loss"
  _checks.check_reduction(fn, reduction)
  delta = _checks.static_number(fn, "delta", delta)  # compared with Python below, as torch's double
  _checks.check_positive(fn, "delta", delta)
  x, y, dtype = prepare_pair(fn, input, target)
  return reduce(_huber_elementwise(x - y, delta), reduction).astype(dtype)


def smooth_l1_loss(
    input: ArrayLike, target: ArrayLike, *, reduction: Reduction = "mean", beta: float = 1.0
) -> jax.Array:
  r"""Smooth L1 loss: Huber loss divided by ``beta``, so the linear part has slope 1.

  The Fast R-CNN box-regression loss: quadratic for residuals below :math:`\beta`, the plain
  absolute error (shifted by :math:`\beta/2`) above.

  .. math::
     d_i = x_i - y_i, \qquad
     \ell_i = \begin{cases} \tfrac{1}{2\beta} d_i^2 & |d_i| < \beta \\
                            |d_i| - \tfrac12 \beta & \text{otherwise} \end{cases}

  Args:
    input: predictions ``x``, any shape, floating.
    target: targets ``y``, same shape as ``input``, floating.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.
    beta: the threshold :math:`\beta \ge 0`. ``beta=0`` is exactly :func:`l1_loss`, gradient
      :math:`\mathrm{sign}(d)` included (torch dispatches to ``l1_loss`` there too). A static
      Python number (under ``jit`` close over it; a traced value raises ``TypeError``).

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the dtype of ``input``.

  Raises:
    TypeError: ``input`` or ``target`` is not floating.
    TypeError: ``beta`` is traced or not a number.
    ValueError: shapes differ, ``beta < 0``, or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.smooth_l1_loss``. optax has none (use
    ``huber_loss(delta=beta) / beta``). Difference: mismatched shapes raise instead of
    broadcasting with a warning.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``smooth_l1_loss``, ``beta=0`` included).

  Examples:
    >>> import jax.numpy as jnp
    >>> float(smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0])))  # (0.125 + 2.5) / 2
    1.3125
    >>> float(smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]), beta=2.0))  # (1/16 + 2) / 2
    1.03125
  """
  fn = "smooth_l1_loss"
  _checks.check_reduction(fn, reduction)
  beta = _checks.static_number(fn, "beta", beta)  # beta == 0 picks the formula at trace time
  _checks.check_positive(fn, "beta", beta, allow_zero=True)
  x, y, dtype = prepare_pair(fn, input, target)
  z = _abs(x - y)
  if beta == 0:  # torch dispatches to l1_loss: |d| with gradient sign(d)
    return reduce(z, reduction).astype(dtype)
  inside = z < beta
  zq = jnp.where(inside, z, jnp.zeros_like(z))  # double where: no inf * 0 from the unused branch
  loss = jnp.where(inside, 0.5 * zq * zq / beta, z - 0.5 * beta)
  return reduce(loss, reduction).astype(dtype)


def asymmetric_mse_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    under_penalty: float = 2.0,
    over_penalty: float = 1.0,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Squared error that weighs under-predictions and over-predictions differently.

  Use it when one direction of error costs more than the other (under-forecasting demand,
  say): with the defaults an under-prediction costs twice an over-prediction of the same size.

  .. math::
     e_i = x_i - y_i, \qquad
     \ell_i = \begin{cases} u\, e_i^2 & e_i < 0 \ \text{(under-prediction)} \\
                            o\, e_i^2 & \text{otherwise} \end{cases}

  with :math:`u` = ``under_penalty`` and :math:`o` = ``over_penalty``.

  Args:
    input: predictions ``x``, any shape, floating.
    target: targets ``y``, same shape as ``input``, floating.
    under_penalty: :math:`u \ge 0`, the weight where the prediction is below the target.
    over_penalty: :math:`o \ge 0`, the weight where the prediction is at or above the target.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the dtype of ``input``.

  Raises:
    TypeError: ``input`` or ``target`` is not floating.
    ValueError: shapes differ, a penalty is negative, or ``reduction`` is unknown.

  Notes:
    Torch twin: none in torch; the reference is
    ``parity.reference.asymmetric_mse.AsymmetricMSELoss``, written from the formula above.
    ``under_penalty == over_penalty == 1`` is :func:`mse_loss`. The gradient at :math:`e = 0`
    is 0 from either side.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``asymmetric_mse_loss``).

  Examples:
    >>> import jax.numpy as jnp
    >>> float(asymmetric_mse_loss(jnp.array([1.0, 3.0]), jnp.array([2.0, 2.0])))  # (2*1 + 1*1) / 2
    1.5
  """
  fn = "asymmetric_mse_loss"
  _checks.check_reduction(fn, reduction)
  _checks.check_positive(fn, "under_penalty", under_penalty, allow_zero=True)
  _checks.check_positive(fn, "over_penalty", over_penalty, allow_zero=True)
  x, y, dtype = prepare_pair(fn, input, target)
  e = x - y
  loss = jnp.where(e < 0, under_penalty, over_penalty) * jnp.square(e)
  return reduce(loss, reduction).astype(dtype)
