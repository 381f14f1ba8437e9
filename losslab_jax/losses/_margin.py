"""Margin losses: margin ranking, hinge embedding, multi-class and multi-label margin."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from losslab_jax._internal import _checks, _dtypes
from losslab_jax._internal._reduction import reduce
from losslab_jax._internal._typing import Reduction
from losslab_jax.activations._activations import _relu_kernel


def _hinge(z: jax.Array) -> jax.Array:
  """``max(0, z)`` with torch's gradient: 1 where ``z > 0``, and 0 at the kink ``z == 0``.

  ``jnp.maximum(z, 0)`` would give 0.5 at the kink; torch's ``clamp_min_`` and its C++ margin kernels
  (``if (z > 0)``) give 0, checked by experiment for every loss in this module and in ``_metric``.
  A NaN ``z`` stays NaN, with a NaN gradient (``where(z > 0, z, 0)`` would return 0 for it).
  """
  return _relu_kernel(z)


def _poison(loss: jax.Array, bad: jax.Array) -> jax.Array:
  """NaN at ``bad`` rows in value and gradient (``where(bad, nan, loss)`` would give gradient 0)."""
  return loss * jnp.where(bad, jnp.full_like(loss, jnp.nan), jnp.ones_like(loss))


def _check_real(fn: str, name: str, x: jax.Array) -> None:
  """A target used as a number (``+-1`` labels): integer or floating, not bool or complex."""
  if x.dtype == jnp.bool_ or not (_dtypes.is_floating(x) or _dtypes.is_integer(x)):
    raise TypeError(
        f"{fn}: expected `{name}` to be an integer or floating array (+1/-1 labels), got dtype"
        f" {x.dtype} with shape {x.shape}"
    )


def _check_class_range(fn: str, name: str, target: jax.Array, low: int, high: int) -> jax.Array:
  """``low <= target < high`` elementwise; an eager call with a value outside raises ValueError.

  Under ``jit`` nothing is raised (``losses.checked`` turns it into a ``checkify`` error); the caller
  makes the affected losses NaN.
  """
  ok = (target >= low) & (target < high)
  got = "values outside that range"
  if _checks.is_concrete(ok):
    bad = np.asarray(target)[~np.asarray(ok)]
    got = str(bad.ravel()[:5].tolist())
  _checks.value_check(fn, ok, f"expected `{name}` class indices in [{low}, {high}), got {got}")
  return ok


def _class_input(fn: str, input: ArrayLike, target: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """Checks shared by the class-index margin losses: ``(C,)`` or ``(N, C)`` floating input, integer target."""
  x = jnp.asarray(input)
  y = jnp.asarray(target)
  _checks.check_floating(fn, "input", x)
  if y.dtype == jnp.bool_:
    raise TypeError(f"{fn}: expected `target` to hold integer class indices, got dtype bool with shape"
                    f" {y.shape}; cast it with `.astype(jnp.int32)`")
  _checks.check_integer(fn, "target", y, hint="pass integer class indices, not one-hot or probabilities")
  _checks.check_ndim(fn, "input", x, (0, 1, 2), "(), (C,) or (N, C), class axis last")
  if x.ndim and x.shape[-1] == 0:
    raise ValueError(f"{fn}: expected at least one class, got `input` of shape {x.shape}")
  return x, y


def margin_ranking_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 0.0,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Margin ranking loss: ``input1`` should rank above ``input2`` where ``target`` is 1, below where -1.

  For pairs of scores ``x1, x2`` and labels ``y`` in ``{1, -1}``, the loss is a hinge on the signed
  difference, zero once the right score leads by at least ``margin``.

  .. math::
     \ell_i = \max(0,\; -y_i\,(x1_i - x2_i) + \text{margin})

  Args:
    input1: scores ``x1``, any shape, floating.
    input2: scores ``x2``, same shape as ``input1``, floating.
    target: labels ``y`` (1 or -1; other values enter the formula as they are), same shape as
      ``input1``, integer or floating.
    margin: the margin; may be negative.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the promoted floating dtype of the inputs and a
    floating ``target`` (as torch, whose formula multiplies by ``target``).

  Raises:
    TypeError: ``input1``/``input2`` not floating, or ``target`` bool or complex.
    ValueError: the three shapes differ, or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.margin_ranking_loss``. Differences: shapes must match exactly
    (torch checks only the number of dimensions and then broadcasts). The gradient at the kink is 0,
    as torch's.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``margin_ranking_loss``; worst measured 1.3e-16 in
    float64, 1.5e-7 in float32).

  Examples:
    >>> import jax.numpy as jnp
    >>> x1, x2 = jnp.array([1.0, 2.0]), jnp.array([2.0, 1.0])
    >>> float(margin_ranking_loss(x1, x2, jnp.array([1.0, 1.0])))  # (max(0, 1) + max(0, -1)) / 2
    0.5
  """
  fn = "margin_ranking_loss"
  _checks.check_reduction(fn, reduction)
  x1, x2, y = jnp.asarray(input1), jnp.asarray(input2), jnp.asarray(target)
  _checks.check_floating(fn, "input1", x1)
  _checks.check_floating(fn, "input2", x2)
  _check_real(fn, "target", y)
  _checks.check_same_shape(fn, ("input1", "input2"), x1, x2)
  _checks.check_same_shape(fn, ("input1", "target"), x1, y)
  out_dtype = _dtypes.result_float_dtype(x1, x2, y)
  cdt = _dtypes.compute_dtype(out_dtype)
  z = -y.astype(cdt) * (x1.astype(cdt) - x2.astype(cdt)) + jnp.asarray(margin, cdt)
  return reduce(_hinge(z), reduction).astype(out_dtype)


def hinge_embedding_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 1.0,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Hinge embedding loss: ``input`` is a distance, small for similar pairs (1), large for dissimilar (-1).

  .. math::
     \ell_i = [y_i \ne -1]\; x_i \;+\; [y_i \ne 1]\; \max(0,\; \text{margin} - x_i)

  A ``y`` that is neither 1 nor -1 gets both terms, as in torch.

  Args:
    input: distances ``x``, any shape, floating.
    target: labels ``y`` (1 or -1), same shape as ``input``, integer or floating.
    margin: the margin for dissimilar pairs; may be negative.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    The elementwise loss (``"none"``) or a scalar, in the dtype of ``input`` (``target`` is only
    compared, so it does not take part in promotion, as in torch).

  Raises:
    TypeError: ``input`` not floating, or ``target`` bool or complex.
    ValueError: shapes differ, or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.hinge_embedding_loss``. Differences: shapes must match
    (torch broadcasts). ``optax.hinge_loss`` (``max(0, 1 - y x)``) is a different function.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``hinge_embedding_loss``; worst measured 2.4e-16 in
    float64, 9.0e-8 in float32).

  Examples:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([0.3, 2.0, 0.5])
    >>> y = jnp.array([1, -1, -1])
    >>> round(float(hinge_embedding_loss(x, y, reduction="sum")), 6)  # 0.3 + max(0, -1) + max(0, 0.5)
    0.8
  """
  fn = "hinge_embedding_loss"
  _checks.check_reduction(fn, reduction)
  x, y = jnp.asarray(input), jnp.asarray(target)
  _checks.check_floating(fn, "input", x)
  _check_real(fn, "target", y)
  _checks.check_same_shape(fn, ("input", "target"), x, y)
  out_dtype = x.dtype
  x = x.astype(_dtypes.compute_dtype(out_dtype))
  zeros = jnp.zeros_like(x)
  loss = jnp.where(y != 1, _hinge(jnp.asarray(margin, x.dtype) - x), zeros) + jnp.where(y != -1, x, zeros)
  return reduce(loss, reduction).astype(out_dtype)


def multi_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    p: int = 1,
    margin: float = 1.0,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Multi-class hinge loss: every wrong class should score ``margin`` below the target class.

  For scores ``x`` over ``C`` classes and a target class ``y``:

  .. math::
     \ell_i = \frac{1}{C} \sum_{j \ne y_i} w_{y_i}\, \max(0,\; \text{margin} - x_{i,y_i} + x_{i,j})^p

  with ``w`` the per-class ``weight`` (1 if absent). The mean is the plain mean over samples (the
  weights are not in the denominator).

  Args:
    input: scores ``x``, shape ``[C]`` or ``[N, C]`` (class axis last), floating; a 0-d input is
      one sample of one class (loss 0), as in torch.
    target: class indices ``y``, shape ``[N]`` (or ``[]`` / ``[1]`` for a 0-D or 1-D ``input``),
      integer (not bool), in ``[0, C)``.
    p: 1 or 2, the power of each hinge term.
    margin: the margin; may be negative.
    weight: per-class weights ``w``, shape ``[C]``, floating; ``None`` for all ones.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    ``"none"``: shape of ``target``; otherwise a scalar. In the promoted floating dtype of ``input``
    and ``weight``.

  Raises:
    TypeError: ``input``/``weight`` not floating, or ``target`` not integer.
    ValueError: ``input`` not 1-D/2-D or with no class; ``target`` not of ``N`` elements in at most one
      dimension; ``weight`` not of shape ``[C]``; ``p`` not 1 or 2; ``reduction`` unknown; and, in an
      eager call, a class index outside ``[0, C)``. Under ``jit`` such a sample's loss and gradient are
      NaN (wrap the loss in ``losses.checked`` to get the error instead).

  Notes:
    Torch twin: ``torch.nn.functional.multi_margin_loss``. Differences: ``target`` may be any integer dtype and
    ``weight`` any floating dtype (torch wants int64 and ``input``'s dtype); the loss is
    differentiable in ``weight`` as well. The gradient at the kink is 0, as torch's.
    ``optax.multiclass_hinge_loss`` (Crammer-Singer: max over classes, no ``1/C``) is a different
    function.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``multi_margin_loss``; worst measured 2.3e-16 in
    float64, 1.5e-7 in float32).

  Examples:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8]])
    >>> round(float(multi_margin_loss(x, jnp.array([3]))), 6)  # (0.3 + 0.4 + 0.6) / 4
    0.325
  """
  fn = "multi_margin_loss"
  _checks.check_reduction(fn, reduction)
  x, y = _class_input(fn, input, target)
  n, c = x.shape if x.ndim == 2 else (1, x.size)  # a 0-d input is one sample of one class (torch)
  if y.ndim > 1 or y.size != n:
    want = "() or (1,)" if x.ndim <= 1 else f"({n},)"
    raise ValueError(f"{fn}: expected `target` of shape {want} for `input` of shape {x.shape}, got {y.shape}")
  if not _checks.is_concrete(p):
    raise TypeError(f"{fn}: expected `p` to be a static Python number (1 or 2), got a traced value")
  if p not in (1, 2) or isinstance(p, bool):
    raise ValueError(f"{fn}: expected `p` to be 1 or 2, got {p!r}")
  w = None
  if weight is not None:
    w = jnp.asarray(weight)
    _checks.check_floating(fn, "weight", w)
    if w.shape != (c,):
      raise ValueError(f"{fn}: expected `weight` of shape ({c},), one per class, got {w.shape}")
  out_dtype = _dtypes.result_float_dtype(x, w)
  cdt = _dtypes.compute_dtype(out_dtype)
  x2, y2 = x.reshape(n, c).astype(cdt), y.reshape(n)
  ok = _check_class_range(fn, "target", y2, 0, c)
  loss = _multi_margin_rows(x2, jnp.clip(y2, 0, c - 1), p, jnp.asarray(margin, cdt), w)
  loss = _poison(loss, ~ok).reshape(y.shape)
  return reduce(loss, reduction).astype(out_dtype)


def _multi_margin_rows(x, y, p, margin, w):
  """Per-row multi-margin loss for ``x`` ``(N, C)`` and in-range ``y`` ``(N,)``."""
  c = x.shape[-1]
  x_y = jnp.take_along_axis(x, y[:, None], axis=-1)
  h = _hinge(margin - x_y + x)
  if p == 2:
    h = h * h
  if w is not None:
    h = h * w.astype(x.dtype)[y][:, None]
  h = jnp.where(jnp.arange(c)[None, :] != y[:, None], h, jnp.zeros_like(h))
  return jnp.sum(h, axis=-1) / c


def multilabel_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Multi-label hinge loss: every target class should score 1 above every non-target class.

  Row ``i`` of ``target`` lists the target classes ``T_i`` up to its first ``-1``; the entries after
  it are ignored. Then

  .. math::
     \ell_i = \frac{1}{C} \sum_{t \in T_i} \sum_{j \notin T_i} \max(0,\; 1 - x_{i,t} + x_{i,j})

  where the outer sum runs over the listed entries, so a class listed twice counts twice, and a row
  that starts with ``-1`` has loss 0.

  Args:
    input: scores ``x``, shape ``[C]`` or ``[N, C]`` (class axis last), floating; a 0-d input is one
      class (loss 0), as in torch.
    target: class lists, same shape as ``input`` (``[]`` or ``[1]`` for a 0-d ``input``), integer
      (not bool), each entry in ``[-1, C)``.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    ``"none"``: shape ``[N]`` (``[]`` for a 1-D ``input``); otherwise a scalar. In the dtype of
    ``input``.

  Raises:
    TypeError: ``input`` not floating, or ``target`` not integer.
    ValueError: ``input`` not 1-D/2-D or with no class; shapes differ; ``reduction`` unknown; and, in
      an eager call, a ``target`` entry outside ``[-1, C)`` (anywhere in the row, as torch checks).
      Under ``jit`` such a row's loss and gradient are NaN (``losses.checked`` reports it instead).

  Notes:
    Torch twin: ``torch.nn.functional.multilabel_margin_loss``. Differences: ``target`` may be any
    integer dtype. The pairwise term is computed for all ``C x C``
    (target slot, class) pairs at once (no loop over values, so it is jittable); the work is
    ``O(N C^2)``, as in torch. Float32 sums in float32 (torch's CPU kernel accumulates in float64).
    The gradient at the kink is 0, as torch's. optax has no equivalent.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``multilabel_margin_loss``; worst measured
    2.1e-16 in float64, 1.0e-7 in float32).

  Examples:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8]])
    >>> y = jnp.array([[3, 0, -1, 1]])  # targets {3, 0}; the 1 after -1 is ignored
    >>> # t=3: (1-0.8+0.2) + (1-0.8+0.4) = 1.0;  t=0: (1-0.1+0.2) + (1-0.1+0.4) = 2.4
    >>> round(float(multilabel_margin_loss(x, y)), 6)  # (1.0 + 2.4) / 4
    0.85
  """
  fn = "multilabel_margin_loss"
  _checks.check_reduction(fn, reduction)
  x, y = _class_input(fn, input, target)
  if x.ndim == 0 and y.shape in ((), (1,)):  # torch: a 0-d input is one class, target () or (1,)
    y = y.reshape(())
  _checks.check_same_shape(fn, ("input", "target"), x, y)
  c = x.shape[-1] if x.ndim else 1
  out_dtype = x.dtype
  x2 = x.reshape(-1, c).astype(_dtypes.compute_dtype(out_dtype))
  y2 = y.reshape(-1, c)
  ok = jnp.all(_check_class_range(fn, "target", y2, -1, c), axis=-1)
  loss = _poison(_multilabel_margin_rows(x2, y2), ~ok).reshape(y.shape[:-1] if y.ndim else ())
  return reduce(loss, reduction).astype(out_dtype)


def _multilabel_margin_rows(x: jax.Array, y: jax.Array) -> jax.Array:
  """Per-row multilabel margin loss for ``x`` and ``y`` of shape ``(N, C)``."""
  c = x.shape[-1]
  listed = jnp.cumprod((y >= 0).astype(jnp.int32), axis=-1) > 0  # slots before the first negative
  y = jnp.clip(y, 0, c - 1)
  classes = jnp.arange(c)[None, None, :]
  is_target = jnp.any((y[:, :, None] == classes) & listed[:, :, None], axis=1)  # (N, C)
  x_t = jnp.take_along_axis(x, y, axis=-1)  # score of the class in each slot
  z = 1 - x_t[:, :, None] + x[:, None, :]  # (N, slot, class)
  pair = listed[:, :, None] & ~is_target[:, None, :]
  h = jnp.where(pair, _hinge(z), jnp.zeros_like(z))
  return jnp.sum(h, axis=(1, 2)) / c
