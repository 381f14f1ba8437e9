"""Pieces every torch-style optimizer alias is chained from (private).

The aliases read like torch's algorithm boxes::

    chain(maximize(maximize), coupled_weight_decay(wd), scale_by_<name>(...), scale_by_lr(lr))

built by :func:`torch_alias`.

``maximize`` flips the gradient first (torch: ``g = -g`` before weight decay); coupled (L2) decay
adds ``wd * p`` to the gradient before any moment; decoupled decay (AdamW, NAdamW, RAdamW, Lion)
contributes ``-lr * wd * p`` after the lr scaling, which is torch's ``p.mul_(1 - lr * wd)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from losslab_jax._internal import _checks

ScalarOrSchedule = optax.ScalarOrSchedule

NO_PARAMS_MSG = (
    "{fn}: weight decay needs the current parameters; call `update(grads, state, params)`"
    " (optax.apply_updates style), not `update(grads, state)`"
)


def increment(step: jax.Array) -> jax.Array:
  """``step + 1``, saturating at the int32 maximum (``optax.safe_increment``), as an array."""
  return jnp.asarray(optax.safe_increment(step))


def resolve(value: ScalarOrSchedule, count: jax.Array) -> jax.Array:
  """A hyperparameter at step ``count`` (a float, or a schedule ``count -> value``), as an array.

  Scalars come back in at least float32 (float64 under x64 when given as Python floats), so torch's
  Python-double coefficients keep their precision for float64 parameters.
  """
  v = value(count) if callable(value) else value
  return jnp.asarray(v, dtype=jnp.result_type(float, v))


def is_static(value: Any) -> bool:
  """True for a Python or NumPy number, fixed when the transformation is built.

  Arrays (for example the hyperparameters ``optax.inject_hyperparams`` passes in, which are
  tracers inside a jitted update) and schedules are dynamic: code may not branch on them.
  """
  return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def is_static_zero(value: Any) -> bool:
  """True when ``value`` is a static number equal to 0 (a switched-off term may be skipped)."""
  return is_static(value) and value == 0.0


def _checkable(value: Any, name: str) -> bool:
  """True for a value fixed now (a number or a concrete array); raises TypeError for a non-number.

  Schedules and traced values (``optax.inject_hyperparams`` inside ``jit``) are not checked.
  """
  if callable(value) or not _checks.is_concrete(value):
    return False
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.ndarray, jax.Array)):
    raise TypeError(f"Invalid {name}: expected a float or a schedule, got {type(value).__name__} {value!r}")
  return True


def check_nonneg(name: str, value: Any) -> None:
  """torch's ``Invalid <name>: <value>`` check (value >= 0), which also refuses NaN.

  Written ``not value >= 0`` so that NaN fails it (``nan < 0`` is False, which let NaN through).
  Skipped for schedules and traced values.
  """
  if _checkable(value, name) and not value >= 0.0:
    raise ValueError(f"Invalid {name}: {value}")


def check_positive(name: str, value: Any) -> None:
  """``Invalid <name>: <value>`` unless value > 0 (lion-pytorch's ``lr > 0``); NaN fails too."""
  if _checkable(value, name) and not value > 0.0:
    raise ValueError(f"Invalid {name}: {value}")


def check_not_nan(name: str, value: Any) -> None:
  """``Invalid <name>: nan`` for a hyperparameter torch does not range-check (``dampening``, ``t0``)."""
  if _checkable(value, name) and bool(np.isnan(value)):
    raise ValueError(f"Invalid {name}: {value}")


def check_beta(index: int, value: Any) -> None:
  """torch's ``Invalid beta parameter at index i`` check (0 <= beta < 1, so NaN fails), skipped for
  schedules."""
  if _checkable(value, f"beta parameter at index {index}") and not 0.0 <= value < 1.0:
    raise ValueError(f"Invalid beta parameter at index {index}: {value}")


def check_updates(fn: str, updates: Any, like: Any = (), what: str = "the optimizer state") -> None:
  """Refuse gradients an ``update`` cannot use, with a message that names both sides.

  Raises ``TypeError`` for a non-floating gradient leaf (an integer gradient would otherwise be
  rounded to an integer update, or fail deep inside numpy), and ``ValueError`` when the gradients'
  tree structure is not the structure of ``like`` (the state built by ``init(params)``, or the
  params). ``like == ()`` (a state field switched off) skips the structure check. Static: both
  are decided from dtypes and tree structures, so they also run under ``jit``.
  """
  leaves, treedef = jax.tree.flatten(updates)
  for leaf in leaves:
    dtype = jnp.result_type(leaf)
    if not jnp.issubdtype(dtype, jnp.inexact):
      raise TypeError(f"{fn}: expected floating-point gradients, got a leaf of dtype {dtype}; cast the"
                      " gradients to the parameters' dtype")
  if isinstance(like, tuple) and like == ():
    return
  expected = jax.tree.structure(like)
  if expected != treedef:
    raise ValueError(f"{fn}: expected gradients with the structure of {what}, {expected}, got gradients"
                     f" with structure {treedef}; pass grads shaped like the params given to init(params)")


def maximize(flag: bool) -> optax.GradientTransformation:
  """``g = -g`` if ``flag`` (torch's ``maximize=True``: the first thing torch does), else the identity."""
  return optax.scale(-1.0) if flag else optax.identity()


_maximize = maximize  # torch_alias's keyword `maximize=` (torch's name) shadows the function there


def coupled_weight_decay(weight_decay: float, fn: str = "optimizer") -> optax.GradientTransformation:
  """torch's L2 ``weight_decay``: ``g <- g + wd * p``; the identity when ``wd == 0``."""
  if is_static_zero(weight_decay):
    return optax.identity()

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(NO_PARAMS_MSG.format(fn=fn))
    check_updates(fn, updates, params, "the params")
    updates = jax.tree.map(lambda g, p: g + jnp.asarray(weight_decay).astype(g.dtype) * p.astype(g.dtype),
                           updates, params)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByLrState(NamedTuple):
  step: jax.Array


def scale_by_lr(lr: ScalarOrSchedule, *, decoupled_weight_decay: float = 0.0,
                fn: str = "optimizer") -> optax.GradientTransformation:
  """``u <- -lr_k * u``, plus ``-lr_k * wd * p`` for decoupled decay (torch's ``p.mul_(1 - lr*wd)``).

  ``lr`` is a float or a schedule called with ``k`` = the number of previous updates, so the k-th
  update (0-based) uses ``schedule(k)``, i.e. torch's ``get_last_lr()`` after k scheduler steps.
  """

  def init_fn(params):
    del params
    return ScaleByLrState(step=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    lr_k = resolve(lr, state.step)
    if not is_static_zero(decoupled_weight_decay):
      if params is None:
        raise ValueError(NO_PARAMS_MSG.format(fn=fn))
      check_updates(fn, updates, params, "the params")
      wd = decoupled_weight_decay

      def decayed(u, p):
        # torch's p.mul_(1 - lr * wd): the factor is rounded to p's compute dtype, as torch rounds
        # it to the tensor's dtype (in float32 a float64 factor would drift from torch by up to
        # half an ulp per step, always in the same direction).
        factor = (1 - lr_k * wd).astype(leaf_compute_dtype(p.dtype))
        dt = jnp.result_type(lr_k, p)
        return (-(lr_k * u) + (factor.astype(dt) - 1) * p.astype(dt)).astype(u.dtype)

      updates = jax.tree.map(decayed, updates, params)
    else:
      updates = jax.tree.map(lambda u: (-(lr_k * u)).astype(u.dtype), updates)
    return updates, ScaleByLrState(step=increment(state.step))

  return optax.GradientTransformation(init_fn, update_fn)


def chain(*txs: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
  """``optax.chain`` (which already returns a ``GradientTransformationExtraArgs``)."""
  return optax.chain(*txs)


def torch_alias(fn: str, direction: optax.GradientTransformation, *, lr: ScalarOrSchedule | None,
                maximize: bool = False, weight_decay: float = 0.0,
                decoupled_weight_decay: float = 0.0) -> optax.GradientTransformationExtraArgs:
  """The alias every torch-style optimizer is: its ``scale_by_<name>`` between torch's head and tail.

  ``chain(maximize(maximize), coupled_weight_decay(weight_decay), direction, tail)``, where the
  tail is ``scale_by_lr(lr, decoupled_weight_decay)`` (``-lr * u``, plus ``-lr * wd * p``), or, for
  ``lr=None`` (a direction that already carries its step size: ASGD, Rprop), ``optax.scale(-1)``.
  The four-element state layout is the same for every alias (switched-off pieces hold
  ``EmptyState``), which state conversions rely on.
  """
  tail = (optax.scale(-1.0) if lr is None
          else scale_by_lr(lr, decoupled_weight_decay=decoupled_weight_decay, fn=fn))
  return chain(_maximize(maximize), coupled_weight_decay(weight_decay, fn=fn), direction, tail)


tree_zeros_like = optax.tree_utils.tree_zeros_like


# -- torch-style arithmetic blocks (per-leaf math shared by the Adam family, RMSprop, ...) ---------


def scalar_dtype() -> jnp.dtype:
  """The dtype of torch's Python-double scalar coefficients here: float64 under x64, else float32."""
  return jnp.dtype(jnp.result_type(float))


def leaf_compute_dtype(dtype: Any) -> jnp.dtype:
  """The dtype a leaf's update is computed in: its own, upcast to float32 for bf16/f16."""
  dtype = jnp.dtype(dtype)
  return jnp.dtype(jnp.float32) if jnp.finfo(dtype).bits < 32 else dtype


def one_minus(beta: Any) -> Any:
  """``1 - beta`` as torch computes it: in Python double for a static beta, else in ``beta``'s dtype."""
  return 1.0 - beta if is_static(beta) else 1.0 - jnp.asarray(beta)


def bias_correction(beta: Any, t: jax.Array) -> jax.Array:
  """``1 - beta ** t`` (torch's ``bias_correction``), with ``t`` the 1-based step as a float array.

  Evaluated as ``-expm1(t * log(beta))``, with ``log(beta)`` taken in Python double when ``beta`` is
  static. Under x64 this agrees with torch's Python-double ``1 - beta ** t`` to ~1e-13 relative
  (both are within rounding of the exact value); without x64 it keeps ~1e-7 relative accuracy,
  where a literal float32 ``1 - 0.999 ** t`` is off by ~1.3e-5.
  """
  t = jnp.asarray(t)
  if is_static(beta):
    log_beta = math.log(beta) if beta > 0.0 else -math.inf
    return -jnp.expm1(t * jnp.asarray(log_beta, t.dtype))
  return -jnp.expm1(t * jnp.log(jnp.asarray(beta, t.dtype)))


def lerp(start: jax.Array, end: jax.Array, weight: Any) -> jax.Array:
  """torch's ``start.lerp_(end, weight)``: ``start + w (end - start)`` for ``|w| < 0.5``, else
  ``end - (end - start)(1 - w)`` (ATen ``Lerp.h``); ``weight`` is a scalar in ``start``'s dtype."""
  w = jnp.asarray(weight, start.dtype)
  if is_static(weight):
    if abs(weight) < 0.5:
      return start + w * (end - start)
    return end - (end - start) * (1 - w)
  return jnp.where(jnp.abs(w) < 0.5, start + w * (end - start), end - (end - start) * (1 - w))


def map_leaves(fn: Callable[..., tuple], n_out: int, tree: Any, *rest: Any) -> tuple[Any, ...]:
  """Apply ``fn`` leaf by leaf over ``tree`` and ``rest`` and unzip its ``n_out`` outputs.

  An entry of ``rest`` that is ``()`` (a state field switched off by a flag) passes ``None`` to
  ``fn`` at every leaf. Output trees take ``tree``'s structure; an output that is ``None`` at
  every leaf comes back as ``()``.
  """
  leaves, treedef = jax.tree.flatten(tree)
  cols = [[None] * len(leaves) if (isinstance(r, tuple) and r == ()) else treedef.flatten_up_to(r)
          for r in rest]
  outs = [fn(*args) for args in zip(leaves, *cols)]
  result = []
  for i in range(n_out):
    col = [o[i] for o in outs]
    result.append(() if col and all(c is None for c in col) else treedef.unflatten(col))
  return tuple(result)
