"""``torch.nn.utils.get_total_norm`` and ``clip_grads_with_norm_`` as functions over pytrees."""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp

from losslab_jax.optim._clipping import _vector_norm


def _number(fn: str, name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f"{fn}: expected `{name}` to be a float, got {type(value).__name__} {value!r}")
  return float(value)


def _scaled_norm(x: jax.Array, ord: float) -> jax.Array:
  """``torch.linalg.vector_norm(x, ord)`` of a flat array without under/overflow in ``x ** ord``.

  For ``p`` other than 0, 1 and +-inf the elements are divided by the largest magnitude first (as
  torch's kernels are accurate for float32 values whose squares are subnormal, ~1e-20, where a
  plain ``sqrt(sum(x * x))`` flushes to 0). NaN and inf pass through (the scale is then 1).
  """
  if ord in (0.0, 1.0, float("inf"), float("-inf")) or x.size == 0:
    return _vector_norm(x, ord)
  a = jnp.abs(x)
  m = jnp.max(a)
  m = jnp.where((m > 0) & jnp.isfinite(m), m, jnp.ones([], m.dtype))
  return m * _vector_norm(a / m, ord)


def _leaf_norm(g: jax.Array, ord: float) -> jax.Array:
  ct = jnp.promote_types(g.dtype, jnp.float32)  # bf16/f16 accumulate in f32, as torch's kernels do
  return _scaled_norm(jnp.ravel(g).astype(ct), ord).astype(g.dtype)


def get_total_norm(tree: Any, norm_type: float = 2.0) -> jax.Array:
  r"""The p-norm of all leaves of ``tree`` together, as if they were one vector.

  .. math::
     \lVert g \rVert_p = \bigl\lVert (\lVert g_1 \rVert_p, \dots, \lVert g_L \rVert_p) \bigr\rVert_p

  Args:
    tree: a pytree of arrays (gradients, usually).
    norm_type: ``p``: ``2.0`` (default), ``1.0``, ``float("inf")`` (largest absolute value),
      ``-inf``, ``0`` (count of non-zeros) or any other float, as ``torch.linalg.vector_norm``.

  Returns:
    A scalar in the promoted dtype of the leaves; ``0.0`` (float32) for a tree without leaves.

  Raises:
    TypeError: ``norm_type`` is not a number.

  Notes:
    Torch twin: ``torch.nn.utils.get_total_norm(tensors, norm_type)`` (``error_if_nonfinite=False``;
    under jit nothing can raise: check ``jnp.isfinite`` of the result). NaN anywhere gives NaN
    (also for the inf norm, as torch); an infinite element gives inf. Each leaf's norm is taken
    in its own dtype (bf16/f16 accumulate in float32), the total in the promoted dtype.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``get_total_norm``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import losslab_jax as ll
    >>> g = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[-4.0]])}
    >>> print(ll.optim.get_total_norm(g), ll.optim.get_total_norm(g, float("inf")))
    5.0 4.0
  """
  norm_type = _number("get_total_norm", "norm_type", norm_type)
  leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
  if not leaves:
    return jnp.zeros([], jnp.float32)
  norms = [_leaf_norm(x, norm_type) for x in leaves]
  dt = jnp.result_type(*norms)
  return _scaled_norm(jnp.stack([n.astype(dt) for n in norms]), norm_type)


def clip_grads_with_norm(tree: Any, max_norm: float, total_norm: jax.typing.ArrayLike) -> Any:
  r"""Scale every leaf of ``tree`` by torch's clipping coefficient for a given total norm.

  .. math::
     g \leftarrow g \cdot \min\Bigl(\frac{\mathrm{max\_norm}}{\mathrm{total\_norm} + 10^{-6}}, 1\Bigr)

  Functional: returns the scaled tree (torch scales ``.grad`` in place). With
  ``total_norm = get_total_norm(tree, p)`` this is ``torch.nn.utils.clip_grad_norm_``; another
  ``total_norm`` (e.g. all-reduced across hosts, or over several models) is what the split API is
  for.

  Args:
    tree: a pytree of arrays.
    max_norm: the norm to clip to.
    total_norm: a scalar (array or number).

  Returns:
    ``tree`` scaled; each leaf keeps its dtype.

  Raises:
    TypeError: ``max_norm`` is not a number.

  Notes:
    Torch twin: ``torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, total_norm)``. A NaN
    total norm makes every leaf NaN, an infinite one makes every finite leaf 0 (``inf * 0`` is
    NaN), as torch. The coefficient is computed in ``total_norm``'s dtype and cast to each
    leaf's dtype.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``clip_grads_with_norm``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import losslab_jax as ll
    >>> g = {"a": jnp.array([3.0]), "b": jnp.array([4.0])}
    >>> out = ll.optim.clip_grads_with_norm(g, 1.0, ll.optim.get_total_norm(g))
    >>> print(out["a"], out["b"])  # times 1 / (5 + 1e-6)
    [0.5999999] [0.79999983]
  """
  max_norm = _number("clip_grads_with_norm", "max_norm", max_norm)
  total = jnp.asarray(total_norm)
  if not jnp.issubdtype(total.dtype, jnp.floating):
    total = total.astype(jnp.result_type(float))
  coef = jnp.minimum(jnp.asarray(max_norm, total.dtype) / (total + jnp.asarray(1e-6, total.dtype)),
                     jnp.ones([], total.dtype))  # jnp.minimum keeps NaN, as torch.clamp
  return jax.tree.map(lambda g: jnp.asarray(g) * coef.astype(jnp.asarray(g).dtype), tree)
