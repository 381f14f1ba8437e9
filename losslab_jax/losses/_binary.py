"""Binary and multi-label losses: BCE on probabilities and on logits, sigmoid focal, soft margin."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from losslab_jax._internal import _checks, _dtypes
from losslab_jax._internal._reduction import reduce
from losslab_jax._internal._typing import Reduction
from losslab_jax.losses._common import prepare_pair

# torch's BCE backward divides by max(x (1 - x), EPSILON) with a float32 EPSILON, also in float64.
_BCE_EPSILON = float(np.float32(1e-12))


def _tangent_out(out: jax.Array, *terms: tuple[jax.Array, Any]) -> jax.Array:
  """``sum(coef * dt)`` over the ``(coef, dt)`` pairs, skipping symbolic-zero tangents.

  With ``symbolic_zeros=True`` an input that is not differentiated arrives as a ``SymbolicZero``;
  skipping it keeps ``inf * 0`` (the BCE target coefficient at ``x = 0``) from becoming a NaN.
  """
  parts = [coef * dt for coef, dt in terms if not isinstance(dt, SymbolicZero)]
  if not parts:
    return jnp.zeros(out.shape, out.dtype)
  return functools.reduce(jnp.add, parts)


def _weight_array(fn: str, name: str, w: ArrayLike | None, shape: tuple[int, ...]) -> jax.Array | None:
  """Check that an optional weight is floating and broadcasts to ``shape`` (not beyond it)."""
  if w is None:
    return None
  w = jnp.asarray(w)
  _checks.check_floating(fn, name, w)
  try:
    ok = np.broadcast_shapes(w.shape, shape) == tuple(shape)
  except ValueError:
    ok = False
  if not ok:
    raise ValueError(
        f"{fn}: expected `{name}` broadcastable to the input shape {tuple(shape)} (matched from"
        f" the trailing dimension), got {w.shape}"
    )
  return jnp.broadcast_to(w, shape)


def _floating_or_integer_target(fn: str, input: ArrayLike, target: ArrayLike):
  """``(x, t, dtype)`` where an integer/bool target is cast to the input's compute dtype."""
  x = jnp.asarray(input)
  t = jnp.asarray(target)
  if _dtypes.is_integer(t):
    _checks.check_floating(fn, "input", x)
    t = t.astype(x.dtype)
  return prepare_pair(fn, x, t)


# --- binary_cross_entropy ---------------------------------------------------------------------


@jax.custom_jvp
def _bce_elementwise(x: jax.Array, t: jax.Array) -> jax.Array:
  ok = (x >= 0) & (x <= 1) & (t >= 0) & (t <= 1)
  loss = (t - 1) * jnp.maximum(jnp.log1p(-x), -100.0) - t * jnp.maximum(jnp.log(x), -100.0)
  return jnp.where(ok, loss, jnp.nan)


def _bce_jvp(primals, tangents):
  x, t = primals
  dx, dt = tangents
  ok = (x >= 0) & (x <= 1) & (t >= 0) & (t <= 1)
  # torch's binary_cross_entropy_backward and binary_cross_entropy_target_backward (-logit(x))
  cx = jnp.where(ok, (x - t) / jnp.maximum(x * (1 - x), _BCE_EPSILON), jnp.nan)
  ct = jnp.where(ok, -jnp.log(x / (1 - x)), jnp.nan)
  out = _bce_elementwise(x, t)
  return out, _tangent_out(out, (cx, dx), (ct, dt))


_bce_elementwise.defjvp(_bce_jvp, symbolic_zeros=True)


def binary_cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    *,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Binary cross-entropy between probabilities ``input`` and targets in :math:`[0, 1]`.

  For a model that already applies a sigmoid. Prefer :func:`binary_cross_entropy_with_logits`,
  which is stable for any logit; this one clamps each log at :math:`-100` as torch does.

  .. math::
     \ell_i = -w_i\big[t_i \max(\log x_i, -100) + (1 - t_i) \max(\log(1 - x_i), -100)\big]

  Args:
    input: probabilities :math:`x \in [0, 1]`, any shape, floating.
    target: targets :math:`t \in [0, 1]`, same shape as ``input``, floating.
    weight: optional rescaling :math:`w`, broadcastable to ``input``'s shape, floating.
    reduction: ``"none"`` | ``"mean"`` (plain mean of :math:`\ell`, not divided by
      :math:`\sum w`) | ``"sum"``.

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the promoted dtype of the inputs.

  Raises:
    TypeError: ``input``, ``target`` or ``weight`` is not floating.
    ValueError: shapes differ, ``weight`` does not broadcast to ``input``, ``reduction`` is
      unknown, or (eagerly) an entry of ``input`` or ``target`` lies outside :math:`[0, 1]`. Under
      ``jit`` such entries come out NaN (value and gradient); :func:`losslab_jax.losses.checked`
      reports them.

  Notes:
    Torch twin: ``torch.nn.functional.binary_cross_entropy``; optax has no probability-input BCE.
    The gradient is torch's exactly, not the derivative of the clamped function:
    :math:`\partial\ell/\partial x = w (x - t) / \max(x(1 - x), 10^{-12})` with torch's float32
    :math:`10^{-12}`, so at :math:`x \in \{0, 1\}` it is :math:`\mp 1.000000004 \cdot 10^{12}`;
    :math:`\partial\ell/\partial t = -w \operatorname{logit}(x)` (:math:`\pm\infty` at 0 and 1).
    A ``jax.custom_jvp`` carries it, so forward mode and Hessians work too.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``binary_cross_entropy``).

  Examples:
    >>> import jax.numpy as jnp
    >>> # t=1 at x=0: the clamp gives 100; t=0 at x=0: 0. Mean 50.
    >>> float(binary_cross_entropy(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0])))
    50.0
  """
  fn = "binary_cross_entropy"
  _checks.check_reduction(fn, reduction)
  x, t, _ = prepare_pair(fn, input, target)
  w = _weight_array(fn, "weight", weight, x.shape)
  dtype = _dtypes.result_float_dtype(jnp.asarray(input), jnp.asarray(target), w)
  cdt = _dtypes.compute_dtype(dtype)
  x, t = x.astype(cdt), t.astype(cdt)
  _checks.value_check(fn, (x >= 0) & (x <= 1),
                      "expected every entry of `input` in [0, 1] (probabilities; for logits use"
                      " binary_cross_entropy_with_logits)")
  _checks.value_check(fn, (t >= 0) & (t <= 1), "expected every entry of `target` in [0, 1]")
  loss = _bce_elementwise(x, t)
  if w is not None:
    loss = loss * w.astype(cdt)
  return reduce(loss, reduction).astype(dtype)


# --- binary_cross_entropy_with_logits ---------------------------------------------------------


@jax.custom_jvp
def _bce_logits_elementwise(x: jax.Array, t: jax.Array, pw: jax.Array | None) -> jax.Array:
  if pw is None:
    return (1 - t) * x - jax.nn.log_sigmoid(x)
  return (1 - t) * x - ((pw - 1) * t + 1) * jax.nn.log_sigmoid(x)


def _bce_logits_jvp(primals, tangents):
  x, t, pw = primals
  dx, dt, dpw = tangents
  # torch's binary_cross_entropy_with_logits_backward / _target_backward, term for term
  out = _bce_logits_elementwise(x, t, pw)
  # the target coefficient does not involve t: "+ 0 * t" makes it NaN where t is NaN (exact elsewhere),
  # so a NaN target gives a NaN gradient, not a plausible one
  t_nan = 0 * t
  if pw is None:
    return out, _tangent_out(out, (jax.nn.sigmoid(x) - t, dx), (t_nan - x, dt))
  pt = pw * t
  cx = (pt + 1 - t) * jax.nn.sigmoid(x) - pt
  ct = jax.nn.log_sigmoid(-x) - pw * jax.nn.log_sigmoid(x) + t_nan
  cpw = -t * jax.nn.log_sigmoid(x)
  return out, _tangent_out(out, (cx, dx), (ct, dt), (cpw, dpw))


_bce_logits_elementwise.defjvp(_bce_logits_jvp, symbolic_zeros=True)


def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    *,
    reduction: Reduction = "mean",
    pos_weight: ArrayLike | None = None,
) -> jax.Array:
  r"""Binary cross-entropy on logits, stable for every finite logit.

  The multi-label / binary classification loss: a sigmoid and BCE in one, computed through
  :math:`\log\sigma` so that no logit overflows. ``pos_weight`` re-weights the positive term
  (per class, to trade recall against precision).

  .. math::
     \ell_i = -w_i\big[p_i\, t_i \log\sigma(x_i) + (1 - t_i) \log\sigma(-x_i)\big]
            = w_i\big[(1 - t_i)\, x_i - (1 + (p_i - 1) t_i) \log\sigma(x_i)\big]

  with :math:`w` = ``weight`` and :math:`p` = ``pos_weight`` (1 when absent).

  Args:
    input: logits :math:`x`, any shape, floating.
    target: targets :math:`t \in [0, 1]`, same shape as ``input``, floating.
    weight: optional rescaling :math:`w`, broadcastable to ``input``'s shape, floating.
    reduction: ``"none"`` | ``"mean"`` (plain mean, not divided by :math:`\sum w`) | ``"sum"``.
    pos_weight: optional positive-class weight :math:`p`, broadcast against ``input`` from the
      trailing dimension: ``[C]`` for ``[N, C]`` is per class, ``[N, 1]`` is per row.

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the promoted dtype of the inputs.

  Raises:
    TypeError: ``input``, ``target``, ``weight`` or ``pos_weight`` is not floating.
    ValueError: shapes differ, ``weight`` or ``pos_weight`` does not broadcast to ``input``'s
      shape, or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.binary_cross_entropy_with_logits``. There is no logit clamp:
    :math:`x = \pm 800` gives a loss of 800 where the sign is wrong. The gradients follow torch's
    backward formulas term for term: :math:`w(\sigma(x)(1 + (p-1)t) - p t)` for ``input`` and
    :math:`w(\log\sigma(-x) - p \log\sigma(x))` for ``target``. ``optax.losses.
    sigmoid_binary_cross_entropy`` is equal without ``weight`` and ``pos_weight``.
    Parity: float64 <= 1e-10, float32 <= 5e-5 (case ``binary_cross_entropy_with_logits``; the
    float32 target gradient cancels, in torch as much as here: reason on the case).

  Examples:
    >>> import jax.numpy as jnp
    >>> # x=0: log 2 whatever the target; pos_weight 3 on the positive: (3 log 2 + log 2) / 2 = 2 log 2
    >>> out = binary_cross_entropy_with_logits(jnp.zeros(2), jnp.array([1.0, 0.0]),
    ...                                        pos_weight=jnp.array([3.0]))
    >>> round(float(out), 6)
    1.386294
  """
  fn = "binary_cross_entropy_with_logits"
  _checks.check_reduction(fn, reduction)
  x, t, _ = prepare_pair(fn, input, target)
  w = _weight_array(fn, "weight", weight, x.shape)
  pw = _weight_array(fn, "pos_weight", pos_weight, x.shape)
  dtype = _dtypes.result_float_dtype(jnp.asarray(input), jnp.asarray(target), w, pw)
  cdt = _dtypes.compute_dtype(dtype)
  x, t = x.astype(cdt), t.astype(cdt)
  loss = _bce_logits_elementwise(x, t, None if pw is None else pw.astype(cdt))
  if w is not None:
    loss = loss * w.astype(cdt)
  return reduce(loss, reduction).astype(dtype)


# --- sigmoid_focal_loss -----------------------------------------------------------------------


def sigmoid_focal_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "none",
) -> jax.Array:
  r"""Sigmoid focal loss (RetinaNet): BCE on logits, down-weighted where it is already easy.

  For dense detection and other heavily imbalanced binary problems: the factor
  :math:`(1 - p_t)^\gamma` shrinks the loss of well-classified entries, and :math:`\alpha`
  balances positives against negatives.

  .. math::
     p = \sigma(x), \quad p_t = p\,t + (1 - p)(1 - t), \quad
     \ell = \mathrm{BCE}(x, t)\,(1 - p_t)^\gamma \cdot
            \big(\alpha t + (1 - \alpha)(1 - t)\big) \ \text{ if } \alpha \ge 0

  Args:
    input: logits :math:`x`, any shape, floating.
    target: binary labels :math:`t` (0 or 1; soft labels are allowed), same shape, floating.
    alpha: :math:`\alpha \in [0, 1]`, the weight of positives; a negative value (torchvision's
      ``-1``) disables the term.
    gamma: :math:`\gamma \ge 0`, the focusing exponent.
    reduction: ``"none"`` (torchvision's default) | ``"mean"`` | ``"sum"``.

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the dtype of ``input``.

  Raises:
    TypeError: ``input`` or ``target`` is not floating.
    ValueError: shapes differ, ``alpha > 1``, ``gamma < 0``, or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torchvision.ops.sigmoid_focal_loss`` (defaults :math:`\alpha = 0.25`,
    :math:`\gamma = 2`, ``reduction="none"``), the same formula and order of operations, so at
    :math:`x = 60, t = 1` the loss is exactly 0 as in torchvision. ``optax.losses.
    sigmoid_focal_loss`` needs ``alpha=0.25`` passed explicitly to agree (its default is ``None``).
    Difference: torchvision rejects a negative ``alpha`` other than ``-1``; here every negative
    ``alpha`` disables the term (fvcore's rule).
    Parity: float64 <= 1e-10, float32 <= 5e-5 (case ``sigmoid_focal_loss``; the float32 soft-target
    gradient cancels, in torch as much as here: reason on the case).

  Examples:
    >>> import jax.numpy as jnp
    >>> # x=0, t=1: BCE log 2, p_t = 1/2, (1/2)^2 = 1/4, alpha_t = 0.25: log(2) / 16 = 0.0433217...
    >>> out = sigmoid_focal_loss(jnp.zeros(1), jnp.ones(1))
    >>> round(float(out[0]), 6)
    0.043322

  References:
    Lin et al., `Focal Loss for Dense Object Detection <https://arxiv.org/abs/1708.02002>`_, 2017.
  """
  fn = "sigmoid_focal_loss"
  _checks.check_reduction(fn, reduction)
  if alpha > 1:
    raise ValueError(f"{fn}: expected `alpha` in [0, 1], or negative to disable it, got {alpha!r}")
  _checks.check_positive(fn, "gamma", gamma, allow_zero=True)
  x, t, dtype = prepare_pair(fn, input, target)
  p = jax.nn.sigmoid(x)
  ce = _bce_logits_elementwise(x, t, None)
  p_t = p * t + (1 - p) * (1 - t)
  # gamma == 0: the factor is 1; skip the power, whose gradient at 0 ** 0 is NaN in JAX (0 in torch)
  loss = ce if gamma == 0 else ce * (1 - p_t) ** gamma
  if alpha >= 0:
    loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
  return reduce(loss, reduction).astype(dtype)


# --- soft margin ------------------------------------------------------------------------------


@jax.custom_jvp
def _soft_margin_elementwise(x: jax.Array, y: jax.Array) -> jax.Array:
  return jax.nn.softplus(-x * y)


def _soft_margin_jvp(primals, tangents):
  x, y = primals
  dx, dy = tangents
  # torch's soft_margin_loss_backward: -y z / (1 + z) with z = exp(-y x), i.e. -y sigmoid(-y x);
  # sigmoid(-y x) keeps the tail (-2.06e-9 at y x = 20 in float32, where sigmoid(y x) - 1 is 0)
  # and stays finite where torch's z overflows (y x < -88 in float32: torch gives NaN there)
  s = -jax.nn.sigmoid(-y * x)
  out = _soft_margin_elementwise(x, y)
  return out, _tangent_out(out, (y * s, dx), (x * s, dy))


_soft_margin_elementwise.defjvp(_soft_margin_jvp, symbolic_zeros=True)


def soft_margin_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = "mean") -> jax.Array:
  r"""Two-class logistic loss on ``±1`` targets.

  .. math::
     \ell_i = \log\big(1 + e^{-y_i x_i}\big)

  Args:
    input: scores :math:`x`, any shape, floating.
    target: labels :math:`y \in \{-1, 1\}`, same shape as ``input``, floating or integer.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the dtype of ``input``.

  Raises:
    TypeError: ``input`` is not floating.
    ValueError: shapes differ, or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.soft_margin_loss``. Computed as
    :math:`\operatorname{softplus}(-yx)`, which stays finite where torch's
    ``log1p(exp(-y x))`` overflows to ``inf`` (:math:`yx < -88` in float32, :math:`< -709` in
    float64); elsewhere the values agree. The gradient is torch's formula,
    :math:`-y\,e^{-yx} / (1 + e^{-yx}) = -y\,\sigma(-yx)`, evaluated as the latter, which is
    finite everywhere (torch's is NaN for :math:`yx < -88` in float32). Torch does not
    differentiate ``target``; here its gradient is :math:`-x\,\sigma(-yx)`.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``soft_margin_loss``, large margins included;
    measured 1.8e-7 in float32, 3.8e-16 in float64).

  Examples:
    >>> import jax.numpy as jnp
    >>> out = soft_margin_loss(jnp.array([0.0, 0.0]), jnp.array([1.0, -1.0]))  # log 2 twice
    >>> round(float(out), 6)
    0.693147
  """
  fn = "soft_margin_loss"
  _checks.check_reduction(fn, reduction)
  x, y, dtype = _floating_or_integer_target(fn, input, target)
  return reduce(_soft_margin_elementwise(x, y), reduction).astype(dtype)


def multilabel_soft_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    *,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Multi-label one-versus-all logistic loss, averaged over the classes of each example.

  .. math::
     \ell_n = -\frac1C \sum_{c=1}^{C} w_c\big[y_{nc} \log\sigma(x_{nc})
              + (1 - y_{nc}) \log\sigma(-x_{nc})\big]

  Args:
    input: logits :math:`x`, shape ``[*, C]`` (class axis last), floating.
    target: multi-hot labels :math:`y \in \{0, 1\}`, same shape, floating or integer.
    weight: optional class weights :math:`w`, broadcastable to ``input``'s shape (``[C]``
      per class), floating.
    reduction: ``"none"`` (one value per example, shape ``[*]``) | ``"mean"`` | ``"sum"``.

  Returns:
    Shape ``input.shape[:-1]`` (``"none"``) or a scalar, in the promoted dtype of the inputs.

  Raises:
    TypeError: ``input`` or ``weight`` is not floating.
    ValueError: shapes differ, ``input`` is 0-d, ``weight`` does not broadcast to ``input``,
      or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.multilabel_soft_margin_loss`` (class axis last there too).
    It is :func:`binary_cross_entropy_with_logits` with ``reduction="none"``, averaged over the
    last axis; ``weight`` is differentiable, as in torch.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``multilabel_soft_margin_loss``).

  Examples:
    >>> import jax.numpy as jnp
    >>> out = multilabel_soft_margin_loss(jnp.zeros((1, 2)), jnp.array([[1, 0]]))  # log 2 per class
    >>> round(float(out), 6)
    0.693147
  """
  fn = "multilabel_soft_margin_loss"
  _checks.check_reduction(fn, reduction)
  x, y, _ = _floating_or_integer_target(fn, input, target)
  if x.ndim == 0:
    raise ValueError(f"{fn}: expected `input` with at least 1 dimension (classes last), got shape ()")
  w = _weight_array(fn, "weight", weight, x.shape)
  dtype = _dtypes.result_float_dtype(jnp.asarray(input), jnp.asarray(target), w)
  cdt = _dtypes.compute_dtype(dtype)
  x, y = x.astype(cdt), y.astype(cdt)
  loss = -(y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))
  if w is not None:
    loss = loss * w.astype(cdt)
  loss = jnp.sum(loss, axis=-1) / x.shape[-1]
  return reduce(loss, reduction, nan_grad=True).astype(dtype)  # linear in target
