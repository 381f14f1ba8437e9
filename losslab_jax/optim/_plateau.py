"""ReduceLROnPlateau as an optax transformation driven by ``update(..., value=metric)``."""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax


class ReduceLROnPlateauState(NamedTuple):
  """State of :func:`reduce_lr_on_plateau`; the names are torch's scheduler attributes.

  Attributes:
    best: the best metric so far (``inf`` in ``"min"`` mode, ``-inf`` in ``"max"`` mode before the
      first update).
    num_bad_epochs: updates since the last improvement (reset by a reduction and during cooldown).
    cooldown_counter: updates left in the cooldown after the last reduction.
    lr: the current learning rate (torch's ``param_group['lr']``), starting at ``base_lr``.
    scale: ``lr / base_lr``, the factor the last update multiplied the updates by.
  """

  best: jax.Array
  num_bad_epochs: jax.Array
  cooldown_counter: jax.Array
  lr: jax.Array
  scale: jax.Array


def _check_int(fn: str, name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
    raise ValueError(f"{fn}: expected `{name}` to be a non-negative integer, got {value!r}")
  return int(value)


def _check_float(fn: str, name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f"{fn}: expected `{name}` to be a float, got {type(value).__name__} {value!r}")
  if math.isnan(value):
    raise ValueError(f"{fn}: expected `{name}` to be a number, got nan")
  return float(value)


def reduce_lr_on_plateau(mode: Literal["min", "max"] = "min", factor: float = 0.1, patience: int = 10,
                         threshold: float = 1e-4, threshold_mode: Literal["rel", "abs"] = "rel",
                         cooldown: int = 0, min_lr: float = 0.0, eps: float = 1e-8, *,
                         base_lr: float = 1.0) -> optax.GradientTransformationExtraArgs:
  r"""Scale the updates down when a metric stops improving, as torch's ``ReduceLROnPlateau``.

  Each ``update(updates, state, params, value=m)`` is one ``scheduler.step(m)``:

  .. code-block:: text

     better = m < best*(1-threshold)   (min, rel)    m < best-threshold   (min, abs)
              m > best*(1+threshold)   (max, rel)    m > best+threshold   (max, abs)
     if better: best = m; num_bad_epochs = 0     else: num_bad_epochs += 1
     if cooldown_counter > 0: cooldown_counter -= 1; num_bad_epochs = 0
     if num_bad_epochs > patience:
         new = max(lr * factor, min_lr);  if lr - new > eps: lr = new
         cooldown_counter = cooldown; num_bad_epochs = 0

  and the updates come back multiplied by ``lr / base_lr`` with that new ``lr``: the k-th update
  applies the learning rate torch has right after ``scheduler.step(m_k)``. Put it after the
  optimizer in a chain, with the optimizer's lr equal to ``base_lr``:
  ``optax.chain(ll.optim.sgd(lr=0.1), reduce_lr_on_plateau(base_lr=0.1))``; then ``min_lr`` and
  ``eps`` are absolute learning rates, as in torch. A NaN metric counts as not better.

  Args:
    mode: ``"min"`` (lower is better) | ``"max"``.
    factor: the multiplier of the lr at a reduction, ``< 1``.
    patience: updates without improvement tolerated before a reduction (torch's: the reduction
      happens when ``num_bad_epochs > patience``).
    threshold: the improvement that counts, relative or absolute.
    threshold_mode: ``"rel"`` | ``"abs"``.
    cooldown: updates after a reduction during which bad updates are not counted.
    min_lr: the lower bound of the lr (one value; build one transformation per param group for
      per-group bounds).
    eps: a reduction smaller than ``eps`` is skipped.
    base_lr: the optimizer's lr, which the scale multiplies (the updates reaching this
      transformation were computed with it).

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``update`` needs the keyword ``value=`` (a scalar
    metric), which ``optax.chain`` forwards. The state is a :class:`ReduceLROnPlateauState` of
    arrays, so the update runs under ``jit`` without retracing.

  Raises:
    ValueError: ``factor >= 1``, an unknown ``mode`` or ``threshold_mode`` (torch's checks), a
      negative ``patience``/``cooldown``, a NaN float argument, or an update called without
      ``value=``.

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.ReduceLROnPlateau`` with one param group, stepped once per
    update. Differences from ``optax.contrib.reduce_on_plateau``: that one reduces when the count
    *reaches* its patience (torch's patience ``p`` is its ``p + 1``), has min mode only, combines rel
    and abs tolerances, bounds the scale rather than the lr, and has no ``eps`` guard.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``reduce_lr_on_plateau``).

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = reduce_lr_on_plateau(patience=2)
    >>> state = tx.init(jnp.zeros(1))
    >>> lrs = []
    >>> for _ in range(7):
    ...   _, state = tx.update(jnp.ones(1), state, value=1.0)
    ...   lrs.append(round(float(state.lr), 6))
    >>> lrs
    [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01]
  """
  fn = "reduce_lr_on_plateau"
  if mode not in ("min", "max"):
    raise ValueError(f"{fn}: expected `mode` 'min' or 'max', got {mode!r}")
  if threshold_mode not in ("rel", "abs"):
    raise ValueError(f"{fn}: expected `threshold_mode` 'rel' or 'abs', got {threshold_mode!r}")
  factor = _check_float(fn, "factor", factor)
  if factor >= 1.0:
    raise ValueError(f"{fn}: expected `factor` < 1.0 (torch: Factor should be < 1.0.), got {factor!r}")
  patience = _check_int(fn, "patience", patience)
  cooldown = _check_int(fn, "cooldown", cooldown)
  threshold = _check_float(fn, "threshold", threshold)
  min_lr = _check_float(fn, "min_lr", min_lr)
  eps = _check_float(fn, "eps", eps)
  base_lr = _check_float(fn, "base_lr", base_lr)
  if base_lr <= 0.0:
    raise ValueError(f"{fn}: expected `base_lr` > 0 (the optimizer's lr), got {base_lr!r}")
  worse = math.inf if mode == "min" else -math.inf

  def is_better(a: jax.Array, best: jax.Array) -> jax.Array:
    if mode == "min" and threshold_mode == "rel":
      return a < best * (1.0 - threshold)
    if mode == "min":
      return a < best - threshold
    if threshold_mode == "rel":
      return a > best * (threshold + 1.0)
    return a > best + threshold

  def init_fn(params: optax.Params) -> ReduceLROnPlateauState:
    del params
    dtype = jnp.result_type(float)
    return ReduceLROnPlateauState(
        best=jnp.asarray(worse, dtype), num_bad_epochs=jnp.zeros([], jnp.int32),
        cooldown_counter=jnp.zeros([], jnp.int32), lr=jnp.asarray(base_lr, dtype),
        scale=jnp.ones([], dtype))

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del params, extra_args
    if value is None:
      raise ValueError(f"{fn}: expected the metric as `update(updates, state, params, value=metric)`, got no"
                       " value")
    current = jnp.asarray(value)
    if current.size != 1:
      raise ValueError(f"{fn}: expected a scalar metric `value`, got shape {current.shape}")
    current = current.reshape(()).astype(state.best.dtype)

    better = is_better(current, state.best)
    best = jnp.where(better, current, state.best)
    bad = jnp.where(better, 0, state.num_bad_epochs + 1)
    in_cooldown = state.cooldown_counter > 0
    cooldown_counter = jnp.where(in_cooldown, state.cooldown_counter - 1, state.cooldown_counter)
    bad = jnp.where(in_cooldown, 0, bad)

    reduce = bad > patience
    new_lr = jnp.maximum(state.lr * factor, min_lr)
    lr = jnp.where(reduce & (state.lr - new_lr > eps), new_lr, state.lr)
    cooldown_counter = jnp.where(reduce, cooldown, cooldown_counter)
    bad = jnp.where(reduce, 0, bad)

    scale = lr / base_lr
    updates = jax.tree.map(lambda u: u * scale.astype(u.dtype), updates)
    new_state = ReduceLROnPlateauState(best=best, num_bad_epochs=bad.astype(jnp.int32),
                                       cooldown_counter=cooldown_counter.astype(jnp.int32), lr=lr, scale=scale)
    return updates, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
