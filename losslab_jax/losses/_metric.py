"""Metric-learning losses on embeddings: cosine embedding, triplet margin, contrastive."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from losslab_jax._internal import _checks, _dtypes
from losslab_jax._internal._reduction import reduce
from losslab_jax._internal._typing import Reduction
from losslab_jax.losses._common import abs_torch_grad
from losslab_jax.losses._margin import _check_real, _hinge

# torch's EPSILON in aten/src/ATen/native/Loss.cpp, added to each squared norm in cosine_embedding_loss.
# It is a C++ float, so float64 inputs get float32(1e-12) = 9.99999996e-13 (measured: with a zero vector
# the float64 gradient is 1/sqrt(EPSILON * |x2|^2) and matches torch only with this value).
_COSINE_EPSILON = float(np.float32(1e-12))
# torch.nn.functional.pairwise_distance's default eps, used by contrastive_loss
_PAIRWISE_EPS = 1e-6


def _pairwise_distance(x1: jax.Array, x2: jax.Array, p: float, eps: float) -> jax.Array:
  """torch's ``pairwise_distance``: ``||x1 - x2 + eps||_p`` over the last axis, with torch's gradient.

  The gradient follows torch's ``norm_backward``: 0 where the norm is 0, ``sign(0) = 0`` for
  ``p = 1``, and 0 at zero entries for ``p < 1``; the double-``where`` keeps it finite everywhere.
  The guards test ``== 0`` (not ``> 0``), so a NaN entry reaches the norm: NaN value, NaN gradient.
  """
  d = x1 - x2 + jnp.asarray(eps, x1.dtype)
  if p == 2:
    s = jnp.sum(d * d, axis=-1)
    zero = s == 0
    return jnp.where(zero, jnp.zeros_like(s), jnp.sqrt(jnp.where(zero, jnp.ones_like(s), s)))
  a = abs_torch_grad(d)  # |d| whose derivative at 0 is torch's sgn(0) = 0 (jnp.abs gives 1)
  if p == 1:
    return jnp.sum(a, axis=-1)
  if math.isinf(p):
    return jnp.max(a, axis=-1)
  nz = a != 0
  s = jnp.sum(jnp.where(nz, jnp.where(nz, a, 1) ** p, 0), axis=-1)
  zero = s == 0
  return jnp.where(zero, jnp.zeros_like(s), jnp.where(zero, jnp.ones_like(s), s) ** (1 / p))


def _check_embeddings(fn: str, names: tuple[str, ...], arrays: tuple[jax.Array, ...]) -> None:
  """Floating embeddings of one shape ``[*, D]``."""
  for name, a in zip(names, arrays):
    _checks.check_floating(fn, name, a)
  for name, a in zip(names[1:], arrays[1:]):
    _checks.check_same_shape(fn, (names[0], name), arrays[0], a)
  if arrays[0].ndim == 0:
    raise ValueError(f"{fn}: expected `{names[0]}` with an embedding axis ([*, D]), got shape ()")


def _check_pair_target(fn: str, x: jax.Array, y: jax.Array) -> None:
  if y.shape != x.shape[:-1]:
    raise ValueError(
        f"{fn}: expected `target` of shape {x.shape[:-1]} (one label per pair of embeddings"
        f" {x.shape}), got {y.shape}"
    )


def cosine_embedding_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 0.0,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Cosine embedding loss: pull similar pairs (1) to cosine 1, push dissimilar ones (-1) below ``margin``.

  .. math::
     \cos_i = \frac{\sum_k x1_{ik}\, x2_{ik}}
                   {\sqrt{(\sum_k x1_{ik}^2 + \epsilon)(\sum_k x2_{ik}^2 + \epsilon)}},
     \qquad
     \ell_i = \begin{cases} 1 - \cos_i & y_i = 1 \\ \max(0,\; \cos_i - \text{margin}) & y_i = -1 \\
              0 & \text{otherwise} \end{cases}

  with torch's :math:`\epsilon = 10^{-12}`, so a zero vector has cosine 0 (not NaN) and a finite
  gradient.

  Args:
    input1: embeddings ``x1``, shape ``[N, D]`` (or ``[D]`` for one pair), floating.
    input2: embeddings ``x2``, same shape as ``input1``, floating.
    target: labels ``y`` (1 or -1), shape ``[N]`` (``[]`` for 1-D inputs), integer or floating.
    margin: the margin for dissimilar pairs, in ``[-1, 1]`` to be meaningful.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    ``"none"``: shape of ``target``; otherwise a scalar. In the promoted floating dtype of
    ``input1`` and ``input2`` (``target`` is only compared, as in torch).

  Raises:
    TypeError: inputs not floating, or ``target`` bool or complex.
    ValueError: a 1-D ``target`` without 2-D inputs, a 0-D ``target`` without 1-D inputs, input
      shapes that differ, a ``target`` of the wrong length, or an unknown ``reduction``.

  Notes:
    Torch twin: ``torch.nn.functional.cosine_embedding_loss``. Differences: shapes must match
    exactly (torch broadcasts ``(1, D)`` against ``(N, D)``). The gradient at the kink
    ``cos == margin`` is 0, as torch's. ``optax.cosine_similarity`` clips the norms at 0 and gives
    NaN for a zero vector.
    Parity: float64 <= 1e-10 (worst measured 9.2e-14); float32 values <= 1e-5, float32 gradients
    <= 3e-4 (worst measured 5.2e-5): the gradient cancels between O(1) terms and torch's float32
    ``sqrt`` is not correctly rounded (cases ``cosine_embedding_loss``, and
    ``cosine_embedding_loss_identical`` for values at ``x1 == x2``).

  Examples:
    >>> import jax.numpy as jnp
    >>> x1 = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    >>> x2 = jnp.array([[0.0, 1.0], [1.0, 0.0]])  # cosines 0 and 1
    >>> y = jnp.array([1, -1])
    >>> round(float(cosine_embedding_loss(x1, x2, y, margin=0.5)), 6)  # ((1 - 0) + (1 - 0.5)) / 2
    0.75
  """
  fn = "cosine_embedding_loss"
  _checks.check_reduction(fn, reduction)
  x1, x2, y = jnp.asarray(input1), jnp.asarray(input2), jnp.asarray(target)
  _check_real(fn, "target", y)
  if y.ndim > 1:
    raise ValueError(f"{fn}: expected a 0-D or 1-D `target`, got shape {y.shape}")
  want = y.ndim + 1
  if x1.ndim != want or x2.ndim != want:
    layout = "[N, D] with target [N]" if y.ndim else "[D] with target []"
    raise ValueError(
        f"{fn}: expected {want}-D inputs for a {y.ndim}-D target ({layout}), got shapes {x1.shape}"
        f" and {x2.shape}"
    )
  _check_embeddings(fn, ("input1", "input2"), (x1, x2))
  _check_pair_target(fn, x1, y)
  out_dtype = _dtypes.result_float_dtype(x1, x2)
  cdt = _dtypes.compute_dtype(out_dtype)
  x1, x2 = x1.astype(cdt), x2.astype(cdt)
  prod = jnp.sum(x1 * x2, axis=-1)
  mag1 = jnp.sum(x1 * x1, axis=-1) + _COSINE_EPSILON
  mag2 = jnp.sum(x2 * x2, axis=-1) + _COSINE_EPSILON
  cos = prod / jnp.sqrt(mag1 * mag2)
  zeros = jnp.zeros_like(cos)
  loss = jnp.where(y == 1, 1 - cos, zeros) + jnp.where(y == -1, _hinge(cos - jnp.asarray(margin, cdt)), zeros)
  return reduce(loss, reduction).astype(out_dtype)


def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Triplet margin loss: the anchor should be closer to the positive than to the negative by ``margin``.

  .. math::
     d(u, v) = \lVert u - v + \text{eps} \rVert_p, \qquad
     \ell_i = \max\bigl(0,\; \text{margin} + d(a_i, p_i) - d_n\bigr)

  with ``d_n = d(a_i, n_i)``, or ``min(d(a_i, n_i), d(p_i, n_i))`` when ``swap`` (the distance swap of
  Balntas et al.). ``eps`` is added to the difference vector, as torch's ``pairwise_distance``
  does, so identical inputs are at distance ``eps * D**(1/p)``.

  Args:
    anchor: embeddings ``a``, shape ``[*, D]``, floating.
    positive: embeddings ``p``, same shape as ``anchor``, floating.
    negative: embeddings ``n``, same shape as ``anchor``, floating.
    margin: the margin, > 0.
    p: the norm degree, > 0 (``float("inf")`` for the max norm); a static Python number (it picks
      the norm's formula at trace time): under ``jit`` close over it.
    eps: added to each difference vector.
    swap: use the distance swap.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    ``"none"``: shape ``[*]`` (``anchor.shape[:-1]``); otherwise a scalar. In the promoted floating
    dtype of the three inputs.

  Raises:
    TypeError: an input is not floating, or ``p`` is traced.
    ValueError: shapes differ, an input is 0-D, ``margin <= 0`` (checked when concrete), ``p <= 0``,
      or ``reduction`` is unknown.

  Notes:
    Torch twin: ``torch.nn.functional.triplet_margin_loss``. Differences: shapes must match exactly
    (torch broadcasts inputs of the same rank); ``p <= 0`` raises (torch computes a "norm" anyway).
    Gradients are finite for identical inputs and follow torch's ``norm`` backward (0 where a
    distance is 0; a tie under ``swap`` splits the gradient in halves, as torch's ``min``).
    ``optax.losses.triplet_margin_loss`` puts eps inside the sum and takes no absolute value, so it
    differs (1.63 vs 0.42 at p=1).
    Parity: float64 <= 1e-10 (worst measured 1.3e-14); float32 values <= 1e-5, float32 gradients
    <= 3e-4 (worst measured 1.4e-5): the anchor's gradient is a difference of unit vectors and the
    norms' summation order differs from torch's (case ``triplet_margin_loss``).

  Examples:
    >>> import jax.numpy as jnp
    >>> a, pos, neg = jnp.array([[0.0, 0.0]]), jnp.array([[0.0, 1.0]]), jnp.array([[1.5, 0.0]])
    >>> round(float(triplet_margin_loss(a, pos, neg)), 4)  # max(0, 1 + 1 - 1.5), up to eps
    0.5

  References:
    Balntas, Riba, Ponsa, Mikolajczyk, `Learning local feature descriptors with triplets and shallow
    convolutional neural networks <https://bmva-archive.org.uk/bmvc/2016/papers/paper119/>`_, 2016.
  """
  fn = "triplet_margin_loss"
  _checks.check_reduction(fn, reduction)
  a, pos, neg = jnp.asarray(anchor), jnp.asarray(positive), jnp.asarray(negative)
  _check_embeddings(fn, ("anchor", "positive", "negative"), (a, pos, neg))
  if _checks.is_concrete(margin) and np.any(np.asarray(margin) <= 0):
    raise ValueError(f"{fn}: expected `margin` > 0, got {margin!r}")
  p = _checks.static_number(fn, "p", p)  # it picks the norm's formula at trace time
  if not p > 0:
    raise ValueError(f"{fn}: expected `p` > 0 (the norm degree), got {p!r}")
  out_dtype = _dtypes.result_float_dtype(a, pos, neg)
  cdt = _dtypes.compute_dtype(out_dtype)
  a, pos, neg = a.astype(cdt), pos.astype(cdt), neg.astype(cdt)
  d_pos = _pairwise_distance(a, pos, p, eps)
  d_neg = _pairwise_distance(a, neg, p, eps)
  if swap:
    d_neg = jnp.minimum(d_neg, _pairwise_distance(pos, neg, p, eps))
  loss = _hinge(jnp.asarray(margin, cdt) + d_pos - d_neg)
  return reduce(loss, reduction).astype(out_dtype)


def contrastive_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 1.0,
    reduction: Reduction = "mean",
) -> jax.Array:
  r"""Contrastive loss: similar pairs (0) are pulled together, dissimilar ones (1) pushed past ``margin``.

  .. math::
     d_i = \lVert x1_i - x2_i + 10^{-6} \rVert_2, \qquad
     \ell_i = (1 - y_i)\, d_i^2 + y_i\, \max(0,\; \text{margin} - d_i)^2

  ``d`` is ``torch.nn.functional.pairwise_distance(input1, input2)`` with its default
  ``eps=1e-6``. A fractional ``y`` interpolates the two terms.

  Args:
    input1: embeddings ``x1``, shape ``[*, D]``, floating.
    input2: embeddings ``x2``, same shape as ``input1``, floating.
    target: ``y``: 0 for a similar pair, 1 for a dissimilar one; shape ``[*]``
      (``input1.shape[:-1]``), integer, bool or floating.
    margin: the distance beyond which dissimilar pairs cost nothing.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

  Returns:
    ``"none"``: shape of ``target``; otherwise a scalar. In the promoted floating dtype of the inputs
    and a floating ``target``.

  Raises:
    TypeError: inputs not floating, or ``target`` complex.
    ValueError: input shapes differ, an input is 0-D, ``target`` has the wrong shape, or
      ``reduction`` is unknown.

  Notes:
    Torch twin: none in torch; the reference is ``parity.reference.contrastive.ContrastiveLoss``
    (same formula, written with torch ops). The gradient is finite everywhere, also at ``d == 0``
    (0 there, as torch's ``norm`` backward). Unlike Hadsell et al. there is no factor 1/2.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``contrastive_loss``; worst measured 2.6e-16
    in float64, 1.3e-7 in float32).

  Examples:
    >>> import jax.numpy as jnp
    >>> x1 = jnp.array([[0.0, 0.0], [0.0, 0.0]])
    >>> x2 = jnp.array([[3.0, 4.0], [0.0, 0.5]])  # distances 5 and 0.5 (up to eps)
    >>> y = jnp.array([0, 1])
    >>> round(float(contrastive_loss(x1, x2, y)), 3)  # (5**2 + (1 - 0.5)**2) / 2
    12.625

  References:
    Hadsell, Chopra, LeCun, `Dimensionality Reduction by Learning an Invariant Mapping
    <https://doi.org/10.1109/CVPR.2006.100>`_, 2006.
  """
  fn = "contrastive_loss"
  _checks.check_reduction(fn, reduction)
  x1, x2, y = jnp.asarray(input1), jnp.asarray(input2), jnp.asarray(target)
  _check_embeddings(fn, ("input1", "input2"), (x1, x2))
  if not (_dtypes.is_floating(y) or _dtypes.is_integer(y)):
    raise TypeError(
        f"{fn}: expected `target` to be 0/1 labels (integer, bool or floating), got dtype {y.dtype}"
    )
  _check_pair_target(fn, x1, y)
  out_dtype = _dtypes.result_float_dtype(x1, x2, y)
  cdt = _dtypes.compute_dtype(out_dtype)
  d = _pairwise_distance(x1.astype(cdt), x2.astype(cdt), 2.0, _PAIRWISE_EPS)
  y = y.astype(cdt)
  far = _hinge(jnp.asarray(margin, cdt) - d)
  loss = (1 - y) * (d * d) + y * (far * far)
  return reduce(loss, reduction).astype(out_dtype)
