"""Probabilistic losses: KL divergence, Poisson and Gaussian negative log-likelihoods."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy
from jax.typing import ArrayLike

from losslab_jax._internal import _checks, _dtypes
from losslab_jax._internal._reduction import reduce
from losslab_jax._internal._typing import KLReduction, Reduction
from losslab_jax.losses._common import prepare_pair


def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: KLReduction = "mean",
    log_target: bool = False,
) -> jax.Array:
  r"""Pointwise Kullback-Leibler divergence, with ``input`` given as log-probabilities.

  The distillation / variational loss :math:`\mathrm{KL}(t \,\|\, q)` where ``input`` holds
  :math:`\log q` and ``target`` holds :math:`t` (or :math:`\log t` with ``log_target=True``).
  Use ``reduction="batchmean"`` for the mathematical KL divergence per example.

  .. math::
     \ell_i = t_i\,(\log t_i - x_i) \quad (0 \text{ where } t_i = 0), \qquad
     \ell_i = e^{t_i}\,(t_i - x_i) \quad \text{with } \texttt{log\_target}

  Args:
    input: log-probabilities :math:`x = \log q`, any shape, floating.
    target: probabilities :math:`t` (log-probabilities with ``log_target``), same shape, floating.
    reduction: ``"none"`` | ``"mean"`` (sum / number of elements) | ``"sum"`` | ``"batchmean"``
      (sum / ``input.shape[0]``; on a 1-D input that divides by its length, on a 0-d input by 1).
    log_target: whether ``target`` is given in log space; a Python bool (anything else raises
      ``TypeError``: ``"yes"`` would otherwise read as true).

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the dtype of ``input``.

  Raises:
    TypeError: ``input`` or ``target`` is not floating, or ``log_target`` is not a bool.
    ValueError: shapes differ, or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.kl_div``. As in torch, ``"mean"`` divides by the number of
    elements, not the batch size (torch warns about it; we do not), a negative target gives NaN,
    and the gradient with respect to ``target`` at :math:`t = 0` is NaN (``xlogy``'s
    :math:`t/t`). ``optax.kl_divergence(x, t).mean()`` equals ``"batchmean"`` for 2-D inputs.
    Difference: mismatched shapes raise instead of broadcasting.
    Parity: float64 <= 1e-10, float32 <= 1e-4 (case ``kl_div``; the float32 target gradient
    cancels, in torch as much as here: reason on the case).

  Examples:
    >>> import jax.numpy as jnp
    >>> x = jnp.log(jnp.array([0.25, 0.75]))
    >>> t = jnp.array([0.5, 0.5])
    >>> # 0.5 log 2 + 0.5 log(2/3) = 0.5 log(4/3) = 0.1438410...
    >>> round(float(kl_div(x, t, reduction="sum")), 6)
    0.143841
  """
  fn = "kl_div"
  _checks.check_reduction(fn, reduction, ("none", "mean", "sum", "batchmean"))
  if not isinstance(log_target, (bool, np.bool_)):
    raise TypeError(f"{fn}: expected `log_target` to be a bool, got {log_target!r}")
  x, t, dtype = prepare_pair(fn, input, target)
  if log_target:
    loss = jnp.exp(t) * (t - x)
  else:
    loss = xlogy(t, t) - t * x
  return reduce(loss, reduction, nan_grad=True).astype(dtype)  # linear in input


def _stirling(t: jax.Array) -> jax.Array:
  """``t log t - t + log(2 pi t) / 2`` where ``t > 1``, else 0; gradient 0 (never NaN) at t <= 1."""
  big = t > 1
  ts = jnp.where(big, t, 2.0)
  term = ts * jnp.log(ts) - ts + 0.5 * jnp.log(2 * math.pi * ts)
  return jnp.where(big, term, 0.0)


def poisson_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Negative log-likelihood of a Poisson target, up to a constant (or in ``full``).

  For count regression: ``input`` is the log-rate (``log_input=True``) or the rate
  :math:`\lambda` itself, ``target`` a sample :math:`t \sim \mathrm{Poisson}(\lambda)`.

  .. math::
     \ell_i = e^{x_i} - t_i x_i \ \ (\texttt{log\_input}), \qquad
     \ell_i = x_i - t_i \log(x_i + \varepsilon) \ \ (\text{otherwise}),

  and with ``full`` the Stirling term
  :math:`t_i \log t_i - t_i + \tfrac12 \log(2\pi t_i)` is added where :math:`t_i > 1`
  (where :math:`t_i \le 1` it adds 0).

  Args:
    input: log-rates (``log_input``) or rates, any shape, floating.
    target: counts :math:`t \ge 0`, same shape as ``input``, floating.
    log_input: whether ``input`` is the log-rate.
    full: add the Stirling approximation of :math:`\log t!`.
    eps: :math:`\varepsilon`, keeps :math:`\log` finite at rate 0 when ``log_input=False``.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the dtype of ``input``.

  Raises:
    TypeError: ``input`` or ``target`` is not floating.
    ValueError: shapes differ, or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.poisson_nll_loss``; no optax equivalent. Difference: with
    ``full=True`` the gradient with respect to ``target`` at :math:`t = 0` is the derivative of the
    masked term, 0 (torch gives NaN there, :math:`0 \cdot \log 0`); values and every other gradient
    are torch's. Mismatched shapes raise.
    Parity: float64 <= 1e-10, float32 <= 3e-4 (case ``poisson_nll_loss``; the target gradient
    cancels near the fit: reason on the case).

  Examples:
    >>> import jax.numpy as jnp
    >>> # exp(0) - 2*0 = 1 and exp(1) - 0*1 = e: mean (1 + e) / 2
    >>> round(float(poisson_nll_loss(jnp.array([0.0, 1.0]), jnp.array([2.0, 0.0]))), 6)
    1.859141
  """
  fn = "poisson_nll_loss"
  _checks.check_reduction(fn, reduction)
  x, t, dtype = prepare_pair(fn, input, target)
  if log_input:
    loss = jnp.exp(x) - t * x
  else:
    loss = x - t * jnp.log(x + eps)
  if full:
    loss = loss + _stirling(t)
  return reduce(loss, reduction, nan_grad=True).astype(dtype)  # linear in target


def _gaussian_var(fn: str, x: jax.Array, var: ArrayLike | float) -> jax.Array:
  """``var`` as an array broadcastable to ``x`` under torch's three shape rules (or raise)."""
  if isinstance(var, (int, float)) and not isinstance(var, bool):
    if var < 0:
      raise ValueError(f"{fn}: expected `var` >= 0 (var has negative entry/entries), got {var!r}")
    return jnp.asarray(var, x.dtype)
  v = jnp.asarray(var)
  _checks.check_floating(fn, "var", v)
  if v.shape == x.shape:
    return v
  if v.shape == x.shape[:-1]:
    return v[..., None]
  if v.ndim == x.ndim and sum(b for a, b in zip(x.shape, v.shape) if a != b) == 1:
    return v
  raise ValueError(
      f"{fn}: expected `var` of shape {x.shape} (one variance per entry), {x.shape[:-1]} (one per"
      f" row), or {x.shape} with exactly one dimension of size 1 (var is of incorrect size),"
      f" got {v.shape}"
  )


def gaussian_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    var: ArrayLike | float,
    *,
    full: bool = False,
    eps: float = 1e-6,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Negative log-likelihood of ``target`` under :math:`\mathcal N(\text{input}, \text{var})`.

  Heteroscedastic regression: the model predicts a mean and a variance per output, and the loss
  trades the squared error against the log-variance. The variance is clamped from below at
  :math:`\varepsilon` for stability (the clamp is not differentiated, as in torch).

  .. math::
     v_i = \max(\sigma^2_i, \varepsilon), \qquad
     \ell_i = \tfrac12 \Big(\log v_i + \frac{(x_i - y_i)^2}{v_i}\Big)
              \ \big(+ \tfrac12 \log 2\pi \text{ with } \texttt{full}\big)

  Args:
    input: predicted means ``x``, shape ``[*, D]``, floating.
    target: samples ``y``, floating; ``input``'s shape, or any shape that broadcasts with it
      (torch documents one dimension of size 1; its tests also use ``(5,)`` against ``(1,)`` and
      ``(5, 5, 5)`` against ``(5, 5)``). The loss has the broadcast shape.
    var: variances :math:`\sigma^2 \ge 0`: a Python float (one for all), an array of
      ``input``'s shape, of ``input.shape[:-1]`` (one per row), or of ``input``'s ndim with exactly
      one dimension of size 1 where ``input``'s is not (``[N, 1]``, ``[1, D]``).
    full: add the constant :math:`\tfrac12 \log 2\pi`.
    eps: :math:`\varepsilon`, the lower clamp of ``var``.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    The elementwise loss of the broadcast shape of ``input``, ``target`` and ``var`` (``"none"``;
    ``input``'s shape when they match) or a scalar, in the promoted dtype of ``input``, ``target``
    and ``var``.

  Raises:
    TypeError: ``input``, ``target`` or ``var`` is not floating.
    ValueError: ``input`` and ``target`` shapes do not broadcast, ``var``'s shape fits none of the three
      rules, ``reduction`` is unknown, or ``var`` has a negative entry (eagerly; under ``jit`` those
      entries come out NaN, and :func:`losslab_jax.losses.checked` reports them).

  Notes:
    Torch twin: ``torch.nn.functional.gaussian_nll_loss``; no optax equivalent. The clamp runs
    under ``no_grad`` in torch, so the gradient with respect to ``var`` is the derivative at the
    clamped value, passed through the clamp unchanged (:math:`-4.9\cdot10^{11}` at
    :math:`\sigma^2 = 10^{-9}`, not 0); so it is here. ``target`` broadcasts against ``input``
    without a warning, as in torch (``var``'s shape rules are checked against ``input``, as in
    torch). Difference: a Python ``int`` variance is accepted.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``gaussian_nll_loss``).

  Examples:
    >>> import jax.numpy as jnp
    >>> # 0.5 * (log 1 + 2^2 / 1) = 2 and 0.5 * (log 1 + 0) = 0: mean 1
    >>> float(gaussian_nll_loss(jnp.array([2.0, 0.0]), jnp.array([0.0, 0.0]), 1.0))
    1.0
  """
  fn = "gaussian_nll_loss"
  _checks.check_reduction(fn, reduction)
  x, y = jnp.asarray(input), jnp.asarray(target)
  _checks.check_floating(fn, "input", x)
  _checks.check_floating(fn, "target", y)
  v = _gaussian_var(fn, x, var)
  shape = _checks.check_broadcastable(fn, ("input", "target"), x, y)  # torch broadcasts silently
  shape = _checks.check_broadcastable(fn, ("input and target", "var"), jax.ShapeDtypeStruct(shape, jnp.bool_), v)
  dtype = _dtypes.result_float_dtype(x, y, v)
  cdt = _dtypes.compute_dtype(dtype)
  x, y, v = (jnp.broadcast_to(a.astype(cdt), shape) for a in (x, y, v))
  _checks.value_check(fn, v >= 0, "expected `var` >= 0 (var has negative entry/entries)")
  v = v * jnp.where(v >= 0, jnp.ones_like(v), jnp.full_like(v, jnp.nan))  # NaN value AND gradient
  # torch clamps under no_grad: the value is max(v, eps), the gradient passes through as identity
  v = jax.lax.stop_gradient(jnp.maximum(v, eps)) + (v - jax.lax.stop_gradient(v))
  loss = 0.5 * (jnp.log(v) + jnp.square(x - y) / v)
  if full:
    loss = loss + 0.5 * math.log(2 * math.pi)
  return reduce(loss, reduction).astype(dtype)
