"""Gradient clipping with torch's semantics (``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``)."""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from losslab_jax.optim import _common


class ClipGradNormState(NamedTuple):
  """State of :func:`clip_grad_norm`.

  Attributes:
    total_norm: the global gradient norm of the last update *before* clipping (what
      ``torch.nn.utils.clip_grad_norm_`` returns), a scalar in the promoted gradient dtype; 0
      before the first update. Log it from ``state.total_norm`` (or ``optax.tree_utils.tree_get(
      opt_state, "total_norm")`` inside a chain).
  """

  total_norm: jax.Array


def _vector_norm(x: jax.Array, ord: float) -> jax.Array:
  """``torch.linalg.vector_norm(x, ord)`` of a flat array (inf, -inf, 0, 1, 2 and any other p)."""
  a = jnp.abs(x)
  if ord == math.inf:
    return jnp.max(a)
  if ord == -math.inf:
    return jnp.min(a)
  if ord == 0:
    return jnp.sum(a != 0).astype(x.dtype)
  if ord == 1:
    return jnp.sum(a)
  if ord == 2:
    return jnp.sqrt(jnp.sum(a * a))
  return jnp.sum(a**ord) ** (1.0 / ord)


def _leaf_norm(g: jax.Array, ord: float) -> jax.Array:
  ct = jnp.promote_types(g.dtype, jnp.float32)  # bf16/f16 accumulate in f32, as torch's kernels do
  return _vector_norm(jnp.ravel(g).astype(ct), ord).astype(g.dtype)


def _check_number(fn: str, name: str, value) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f"{fn}: expected `{name}` to be a float, got {type(value).__name__} {value!r}")
  if math.isnan(value):
    raise ValueError(f"{fn}: expected `{name}` to be a number, got nan")
  return float(value)


def clip_grad_norm(max_norm: float, norm_type: float = 2.0) -> optax.GradientTransformation:
  """Rescale all gradients together so their global norm is at most ``max_norm``, as torch does.

  The norm is taken over every leaf at once (as if all gradients were one vector), and the
  gradients are multiplied by

  .. math::
     c = \\min\\Bigl(1, \\frac{\\mathrm{max\\_norm}}{\\lVert g \\rVert_p + 10^{-6}}\\Bigr),
     \\qquad \\lVert g \\rVert_p = \\bigl\\lVert (\\lVert g_1 \\rVert_p, \\dots,
     \\lVert g_L \\rVert_p) \\bigr\\rVert_p

  always, so gradients whose norm is within ``1e-6`` below ``max_norm`` are scaled very
  slightly, as in torch. Put it first in a chain: ``optax.chain(ll.optim.clip_grad_norm(1.0),
  ll.optim.adam(1e-3))`` is ``clip_grad_norm_(model.parameters(), 1.0); opt.step()``.

  Args:
    max_norm: largest allowed global norm, ``>= 0``.
    norm_type: the ``p`` of the p-norm: ``2.0`` (default), ``1.0``, ``float("inf")`` (largest
      absolute value), or any other float accepted by ``torch.linalg.vector_norm``.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ClipGradNormState`, which holds the
    pre-clip norm (torch's return value).

  Raises:
    TypeError: ``max_norm`` or ``norm_type`` is not a number; at update time, integer gradients.
    ValueError: ``max_norm < 0`` (torch would flip the gradients' sign), or either is NaN.

  Notes:
    Torch twin: ``torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)``, with
    ``error_if_nonfinite=False``. A NaN norm makes every gradient NaN; an infinite norm makes the
    infinite elements NaN (``inf * 0``) and every other element 0, as in torch.
    ``optax.clip_by_global_norm`` differs: L2 only, no ``+1e-6``, and it leaves gradients at or
    below the threshold untouched (scale 0.0955717735 vs torch's 0.0955717552 at max_norm=0.5,
    norm=5.23). Each leaf's norm is computed in the leaf's dtype (bf16/f16 accumulate in float32),
    the total in the promoted dtype, and each gradient keeps its dtype.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``clip_grad_norm``, and
    ``clip_grad_norm_then_step`` before SGD, Adam and ASGD steps).

  Examples:
    >>> import jax.numpy as jnp
    >>> import losslab_jax as ll
    >>> tx = ll.optim.clip_grad_norm(1.0)
    >>> g = {"a": jnp.array([3.0], jnp.float32), "b": jnp.array([4.0], jnp.float32)}
    >>> u, state = tx.update(g, tx.init(g))  # scaled by 1 / (5 + 1e-6), as torch does
    >>> print(state.total_norm, u["a"], u["b"])
    5.0 [0.5999999] [0.79999983]
  """
  max_norm = _check_number("clip_grad_norm", "max_norm", max_norm)
  norm_type = _check_number("clip_grad_norm", "norm_type", norm_type)
  if max_norm < 0:
    raise ValueError(f"clip_grad_norm: expected `max_norm` >= 0, got {max_norm!r}")

  def init_fn(params):
    leaves = jax.tree.leaves(params)
    dt = jnp.result_type(*leaves) if leaves else jnp.float32
    return ClipGradNormState(total_norm=jnp.zeros([], dt))

  def update_fn(updates, state, params=None):
    del params
    _common.check_updates("clip_grad_norm", updates)
    leaves = jax.tree.leaves(updates)
    if not leaves:
      return updates, state
    norms = [_leaf_norm(g, norm_type) for g in leaves]
    dt = jnp.result_type(*norms)
    total = _vector_norm(jnp.stack([n.astype(dt) for n in norms]), norm_type)
    coef = jnp.minimum(jnp.asarray(max_norm, dt) / (total + jnp.asarray(1e-6, dt)), jnp.ones([], dt))
    # jnp.minimum propagates NaN, as torch.clamp does
    updates = jax.tree.map(lambda g: g * coef.astype(g.dtype), updates)
    return updates, ClipGradNormState(total_norm=total.astype(state.total_norm.dtype))

  return optax.GradientTransformation(init_fn, update_fn)


def clip_grad_value(clip_value: float) -> optax.GradientTransformation:
  """Clamp every gradient element to ``[-clip_value, clip_value]``, as torch does.

  .. math::
     g \\leftarrow \\min(\\max(g, -c), c)

  Args:
    clip_value: the bound :math:`c`, ``>= 0``.

  Returns:
    An ``optax.GradientTransformation`` with an empty state.

  Raises:
    TypeError: ``clip_value`` is not a number; at update time, integer gradients.
    ValueError: ``clip_value < 0`` or NaN.

  Notes:
    Torch twin: ``torch.nn.utils.clip_grad_value_(params, clip_value)``. NaN stays NaN.
    ``optax.clip(c)`` computes the same.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``clip_grad_value``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import losslab_jax as ll
    >>> tx = ll.optim.clip_grad_value(0.5)
    >>> g = jnp.array([-2.0, 0.1, 3.0])
    >>> print(tx.update(g, tx.init(g))[0])
    [-0.5  0.1  0.5]
  """
  c = _check_number("clip_grad_value", "clip_value", clip_value)
  if c < 0:
    raise ValueError(f"clip_grad_value: expected `clip_value` >= 0, got {clip_value!r}")

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    _common.check_updates("clip_grad_value", updates)
    clip = lambda g: jnp.clip(g, -jnp.asarray(c, g.dtype), jnp.asarray(c, g.dtype))  # noqa: E731
    return jax.tree.map(clip, updates), state

  return optax.GradientTransformation(init_fn, update_fn)
