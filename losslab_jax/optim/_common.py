"""Pieces every torch-style optimizer alias is chained from (private).

The aliases read like torch's algorithm boxes::

    chain(maximize(maximize), coupled_weight_decay(wd), scale_by_<name>(...), scale_by_lr(lr))

``maximize`` flips the gradient first (torch: ``g = -g`` before weight decay); coupled (L2) decay
adds ``wd * p`` to the gradient before any moment; decoupled decay (AdamW, NAdamW, RAdamW, Lion)
contributes ``-lr * wd * p`` after the lr scaling, which is torch's ``p.mul_(1 - lr * wd)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

ScalarOrSchedule = optax.ScalarOrSchedule

NO_PARAMS_MSG = (
    "{fn}: weight decay needs the current parameters; call `update(grads, state, params)`"
    " (optax.apply_updates style), not `update(grads, state)`"
)


def resolve(value: ScalarOrSchedule, count: jax.Array) -> jax.Array:
  """A hyperparameter at step ``count`` (a float, or a schedule ``count -> value``), as an array.

  Scalars come back in at least float32 (float64 under x64 when given as Python floats), so torch's
  Python-double coefficients keep their precision for float64 parameters.
  """
  v = value(count) if callable(value) else value
  return jnp.asarray(v, dtype=jnp.result_type(float, v))


def check_nonneg(name: str, value: Any) -> None:
  """torch's ``Invalid <name>: <value>`` check, skipped for schedules."""
  if not callable(value) and value < 0.0:
    raise ValueError(f"Invalid {name}: {value}")


def check_beta(index: int, value: Any) -> None:
  """torch's ``Invalid beta parameter at index i`` check (0 <= beta < 1), skipped for schedules."""
  if not callable(value) and not 0.0 <= value < 1.0:
    raise ValueError(f"Invalid beta parameter at index {index}: {value}")


def cast_like(x: jax.Array, like: jax.Array) -> jax.Array:
  return jnp.asarray(x).astype(like.dtype)


def maximize(flag: bool) -> optax.GradientTransformation:
  """``g = -g`` if ``flag`` (torch's ``maximize=True``), else the identity."""
  return optax.scale(-1.0) if flag else optax.identity()


def coupled_weight_decay(weight_decay: float, fn: str = "optimizer") -> optax.GradientTransformation:
  """torch's L2 ``weight_decay``: ``g <- g + wd * p``; the identity when ``wd == 0``."""
  if weight_decay == 0.0:
    return optax.identity()

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(NO_PARAMS_MSG.format(fn=fn))
    updates = jax.tree.map(lambda g, p: g + cast_like(weight_decay, g) * p.astype(g.dtype), updates, params)
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
    if decoupled_weight_decay != 0.0:
      if params is None:
        raise ValueError(NO_PARAMS_MSG.format(fn=fn))
      wd = decoupled_weight_decay
      updates = jax.tree.map(
          lambda u, p: (-(lr_k * u) - (lr_k * wd) * p.astype(jnp.result_type(lr_k, p))).astype(u.dtype),
          updates, params)
    else:
      updates = jax.tree.map(lambda u: (-(lr_k * u)).astype(u.dtype), updates)
    return updates, ScaleByLrState(step=optax.safe_increment(state.step))

  return optax.GradientTransformation(init_fn, update_fn)


def chain(*txs: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
  """``optax.chain`` (which already returns a ``GradientTransformationExtraArgs``)."""
  return optax.chain(*txs)


def tree_zeros_like(params: Any, dtype=None) -> Any:
  return jax.tree.map(lambda p: jnp.zeros_like(p, dtype=dtype), params)


def hyperparams_static(*values: Any) -> bool:
  """True when no hyperparameter is a schedule (for choosing cheaper static code paths)."""
  return not any(isinstance(v, Callable) for v in values)
