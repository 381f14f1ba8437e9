"""ReduceLROnPlateau as an optax transformation driven by ``update(..., value=metric)``."""

from __future__ import annotations

import dataclasses
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
  spec = _parse_plateau(mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps, base_lr)

  def init_fn(params: optax.Params) -> ReduceLROnPlateauState:
    del params
    dtype = jnp.result_type(float)
    return ReduceLROnPlateauState(
        best=jnp.asarray(spec.worse, dtype), num_bad_epochs=jnp.zeros([], jnp.int32),
        cooldown_counter=jnp.zeros([], jnp.int32), lr=jnp.asarray(spec.base_lr, dtype),
        scale=jnp.ones([], dtype))

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del params, extra_args
    new_state = _plateau_step(spec, state, _metric(value, state.best.dtype))
    updates = jax.tree.map(lambda u: u * new_state.scale.astype(u.dtype), updates)
    return updates, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


_FN = "reduce_lr_on_plateau"


@dataclasses.dataclass(frozen=True)
class _PlateauSpec:
  """The checked arguments of :func:`reduce_lr_on_plateau`."""

  mode: str
  factor: float
  patience: int
  threshold: float
  threshold_mode: str
  cooldown: int
  min_lr: float
  eps: float
  base_lr: float

  @property
  def worse(self) -> float:
    """The initial ``best``: worse than any metric."""
    return math.inf if self.mode == "min" else -math.inf


def _parse_plateau(mode: Any, factor: Any, patience: Any, threshold: Any, threshold_mode: Any, cooldown: Any,
                   min_lr: Any, eps: Any, base_lr: Any) -> _PlateauSpec:
  """The arguments checked (torch's checks, and no NaN) into a :class:`_PlateauSpec`."""
  fn = _FN
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
  return _PlateauSpec(mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps, base_lr)


def _is_better(spec: _PlateauSpec, a: jax.Array, best: jax.Array) -> jax.Array:
  """torch's ``is_better`` (a NaN metric is not better)."""
  threshold = spec.threshold
  if spec.mode == "min" and spec.threshold_mode == "rel":
    return a < best * (1.0 - threshold)
  if spec.mode == "min":
    return a < best - threshold
  if spec.threshold_mode == "rel":
    return a > best * (threshold + 1.0)
  return a > best + threshold


def _metric(value: Any, dtype: Any) -> jax.Array:
  """The metric ``value=`` as a 0-d array of ``dtype``; refused when missing or not a scalar."""
  if value is None:
    raise ValueError(f"{_FN}: expected the metric as `update(updates, state, params, value=metric)`, got no"
                     " value")
  current = jnp.asarray(value)
  if current.size != 1:
    raise ValueError(f"{_FN}: expected a scalar metric `value`, got shape {current.shape}")
  return current.reshape(()).astype(dtype)


def _plateau_step(spec: _PlateauSpec, state: ReduceLROnPlateauState, current: jax.Array) -> ReduceLROnPlateauState:
  """One torch ``scheduler.step(current)``: the state after it, with ``scale = lr / base_lr``."""
  better = _is_better(spec, current, state.best)
  best = jnp.where(better, current, state.best)
  bad = jnp.where(better, 0, state.num_bad_epochs + 1)
  in_cooldown = state.cooldown_counter > 0
  cooldown_counter = jnp.where(in_cooldown, state.cooldown_counter - 1, state.cooldown_counter)
  bad = jnp.where(in_cooldown, 0, bad)

  reduce = bad > spec.patience
  new_lr = jnp.maximum(state.lr * spec.factor, spec.min_lr)
  lr = jnp.where(reduce & (state.lr - new_lr > spec.eps), new_lr, state.lr)
  cooldown_counter = jnp.where(reduce, spec.cooldown, cooldown_counter)
  bad = jnp.where(reduce, 0, bad)

  scale = lr / spec.base_lr
  return ReduceLROnPlateauState(best=best, num_bad_epochs=bad.astype(jnp.int32),
                                cooldown_counter=cooldown_counter.astype(jnp.int32), lr=lr, scale=scale)
