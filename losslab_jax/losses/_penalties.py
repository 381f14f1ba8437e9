"""Regularization penalties over a params pytree: L1, L2, elastic net, with a leaf filter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from losslab_jax._internal import _dtypes

LeafFilter = Callable[[tuple[Any, ...], jax.Array], bool]

_NORM_NAMES = ("bias", "scale", "norm", "ln", "bn", "layernorm", "batchnorm", "groupnorm")


def _key_name(k: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def exclude_bias_and_norm(path: tuple[Any, ...], leaf: jax.Array) -> bool:
  """Leaf filter: penalise weight matrices and kernels only.

  Returns False (no penalty) for leaves with at most one dimension (biases, norm scales and
  offsets) and for leaves whose path has a key named ``bias``, ``scale`` or containing ``norm``
  (``ln``, ``bn`` and the like): the usual "no weight decay on biases and norms" rule.

  Examples:
    >>> import jax.numpy as jnp
    >>> params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}
    >>> round(float(l2_penalty(params, filter=exclude_bias_and_norm)), 6)  # 0.5 * 4, bias skipped
    2.0
  """
  if jnp.ndim(leaf) <= 1:
    return False
  for k in path:
    name = _key_name(k).lower()
    if name in ("bias", "scale") or "norm" in name or name in _NORM_NAMES:
      return False
  return True


def _selected(fn: str, params: Any, filter: LeafFilter | None) -> list[jax.Array]:
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  out = []
  for path, leaf in leaves:
    if leaf is None:
      continue
    a = jnp.asarray(leaf)
    if not _dtypes.is_floating(a):
      continue  # integer leaves (step counters) are not parameters of a penalty
    if filter is None or filter(path, a):
      out.append(a)
  return out


def _total(fn: str, params: Any, filter: LeafFilter | None, leaf_fn: Callable[[jax.Array], jax.Array]) -> jax.Array:
  leaves = _selected(fn, params, filter)
  dtype = _dtypes.result_float_dtype(*leaves)
  cdt = _dtypes.compute_dtype(dtype)
  total = jnp.zeros((), cdt)
  for a in leaves:
    total = total + jnp.sum(leaf_fn(a.astype(cdt)))
  return total.astype(dtype)


def _abs(x: jax.Array) -> jax.Array:
  return x * jnp.sign(x)  # |x| with torch's gradient sgn(0) = 0 at 0


def l1_penalty(params: Any, *, filter: LeafFilter | None = None) -> jax.Array:
  r"""The L1 (lasso) penalty :math:`\sum_j |w_j|` over the floating leaves of a params pytree.

  Add ``lam * l1_penalty(params)`` to the loss for sparse weights. No optimizer's weight decay
  produces it.

  Args:
    params: a pytree of arrays (a flax ``nnx.State``, a dict of arrays, ...). Integer leaves are skipped.
    filter: ``filter(path, leaf) -> bool``: which leaves are penalised (``path`` as in
      ``jax.tree_util.tree_flatten_with_path``); ``None`` for all. :func:`exclude_bias_and_norm` is a
      ready-made one.

  Returns:
    A scalar in the promoted dtype of the selected leaves (0 when none is selected).

  Notes:
    Torch twin: ``sum(p.abs().sum() for p in model.parameters())``; the gradient at 0 is 0 (torch's
    ``sgn``). Not in API.md; an addition.

  Examples:
    >>> import jax.numpy as jnp
    >>> round(float(l1_penalty({"w": jnp.array([1.0, -2.0]), "b": jnp.array(3.0)})), 6)
    6.0
  """
  return _total("l1_penalty", params, filter, _abs)


def l2_penalty(params: Any, *, filter: LeafFilter | None = None) -> jax.Array:
  r"""Half the squared L2 norm :math:`\tfrac12 \sum_j w_j^2` over the floating leaves of a pytree.

  The factor :math:`\tfrac12` is chosen so that :math:`\nabla_w\, \lambda\,\text{l2\_penalty} =
  \lambda w`: adding ``weight_decay * l2_penalty(params)`` to the loss is exactly torch's coupled
  ``weight_decay`` of ``SGD``/``Adam``/``RMSprop``/... (``g <- g + wd * p``), e.g.
  ``ll.optim.sgd(lr, weight_decay=wd)`` on ``L`` follows the same trajectory as ``ll.optim.sgd(lr)``
  on ``L + wd * l2_penalty(params)``. (With the unhalved :math:`\sum w^2` the equivalent
  ``weight_decay`` would be :math:`2\lambda`.)

  Decoupled weight decay (``AdamW``, ``ll.optim.adamw``; ``p <- p (1 - lr * wd)`` outside the
  adaptive scaling) is **not** an L2 penalty for adaptive optimizers: an L2 gradient passes through
  Adam's division by :math:`\sqrt{v}`, so weights with large gradients are decayed less. Only for
  plain SGD do the two coincide (with ``wd_decoupled = wd`` per unit ``lr``). Both facts are tested in
  ``tests/losses/test_penalties.py``.

  Args:
    params: a pytree of arrays. Integer leaves are skipped.
    filter: ``filter(path, leaf) -> bool`` selecting the penalised leaves; ``None`` for all. Use
      :func:`exclude_bias_and_norm` for the usual "no decay on biases and norms".

  Returns:
    A scalar in the promoted dtype of the selected leaves.

  Notes:
    Torch twin: ``0.5 * sum((p ** 2).sum() for p in params)``, equivalent to the optimizers'
    ``weight_decay`` as above. Not in API.md; an addition.

  Examples:
    >>> import jax.numpy as jnp
    >>> round(float(l2_penalty({"w": jnp.array([1.0, -2.0])})), 6)  # (1 + 4) / 2
    2.5
  """
  return _total("l2_penalty", params, filter, lambda x: 0.5 * x * x)


def elastic_net_penalty(params: Any, l1_ratio: float = 0.5, *, filter: LeafFilter | None = None) -> jax.Array:
  r"""Elastic net: :math:`\rho \sum_j |w_j| + (1 - \rho)\,\tfrac12 \sum_j w_j^2`.

  scikit-learn's ``ElasticNet`` penalty per unit ``alpha`` (``l1_ratio`` :math:`\rho`): ``1`` is
  :func:`l1_penalty`, ``0`` is :func:`l2_penalty`. Multiply by the strength and add to the loss.

  Args:
    params: a pytree of arrays. Integer leaves are skipped.
    l1_ratio: :math:`\rho \in [0, 1]`.
    filter: ``filter(path, leaf) -> bool`` selecting the penalised leaves; ``None`` for all.

  Returns:
    A scalar in the promoted dtype of the selected leaves.

  Raises:
    ValueError: ``l1_ratio`` outside ``[0, 1]``.

  Notes:
    Torch twin: none built in. Not in API.md; an addition.

  Examples:
    >>> import jax.numpy as jnp
    >>> round(float(elastic_net_penalty({"w": jnp.array([1.0, -2.0])}, 0.5)), 6)  # 0.5*3 + 0.5*2.5
    2.75
  """
  r = float(l1_ratio)
  if not 0.0 <= r <= 1.0:
    raise ValueError(f"elastic_net_penalty: expected `l1_ratio` in [0, 1], got {l1_ratio!r}")
  return _total("elastic_net_penalty", params, filter, lambda x: r * _abs(x) + (1.0 - r) * 0.5 * x * x)
