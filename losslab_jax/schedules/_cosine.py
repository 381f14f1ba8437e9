"""Cosine schedules: CosineAnnealingLR, CosineAnnealingWarmRestarts, and linear warmup + cosine."""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from losslab_jax.schedules._core import (Schedule, TorchSchedule, TorchSteps, as_count, as_float, check_int, div,
                                         dtypes_of, float_dtype, restartable, tabulated)


def _cosine_rule(lr: float, T_max: float, eta_min: float) -> TorchSteps:  # noqa: N803 - torch's name
  base, eta, T = lr, eta_min, T_max

  def step(k: int, g: float) -> float:  # torch's CosineAnnealingLR.get_lr, chainable branches
    if (k - 1 - T) % (2 * T) == 0:
      return g + (base - eta) * (1 - math.cos(math.pi / T)) / 2
    return (1 + math.cos(math.pi * k / T)) / (1 + math.cos(math.pi * (k - 1) / T)) * (g - eta) + eta

  return TorchSteps(
      name="cosine_annealing_lr", base=base,
      first=lambda g: g,
      step=step,
      restart=lambda g: eta + (base - eta) * (1 + math.cos(math.pi * 0 / T)) / 2,
      horizon=None)


def _cos_pi(k: jax.Array, T: float, dtype: Any) -> jax.Array:
  """``math.cos(math.pi * k / T)`` with torch's rounding of the argument."""
  return jnp.cos(div(jnp.pi * k.astype(dtype), T))


def cosine_annealing_lr(lr: float, T_max: int, eta_min: float = 0.0) -> Schedule:  # noqa: N803
  r"""Cosine annealing from ``lr`` to ``eta_min`` over ``T_max`` counts, continuing past ``T_max``.

  .. math::
     \eta_k = \eta_{\min} + \frac{\eta_0 - \eta_{\min}}{2}\left(1 + \cos\frac{\pi k}{T_{\max}}\right)

  for every :math:`k`: past :math:`T_{\max}` the lr rises again and is back at :math:`\eta_0` at
  :math:`2T_{\max}`, as torch's does (optax's ``cosine_decay_schedule`` holds the minimum instead).
  torch reaches each value by its chainable recursion
  :math:`\eta_k = \eta_{\min} + (\eta_{k-1} - \eta_{\min})\,\frac{1 + \cos(\pi k / T)}{1 + \cos(\pi (k-1)/T)}`,
  with :math:`\eta_k = \eta_{k-1} + (\eta_0 - \eta_{\min})(1 - \cos(\pi/T))/2` on the step after each
  minimum; that recursion is what is returned.

  Args:
    lr: :math:`\eta_0`, the initial learning rate.
    T_max: the half period, a positive number of counts.
    eta_min: :math:`\eta_{\min}`, the minimum learning rate.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: ``T_max`` is not positive (torch divides by zero at the first step).

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.CosineAnnealingLR``. Bitwise equal to torch for counts
    below 2048 (float64, CPU; eager and jit). Beyond, a closed form that keeps torch's systematic
    rounding: after each minimum torch restarts from
    :math:`\eta_{\min} + (\eta_0 - \eta_{\min})(1 - \cos(\pi/T))/2` and its ratios telescope to
    :math:`(1 + \cos(\pi k/T)) / (1 + \cos(\pi s/T))` (:math:`s` the count after the minimum), whose
    cancellation (~1e-16 / (pi/T)^2 relative) it carries for the whole period; the schedule computes
    those same terms. Measured against torch: <= 1.5e-14 relative up to k = 1e5 for T_max from 7 to
    3e5 (the plain closed form drifts to 2e-11). torch's per-step rounding of ``lr - eta_min`` next to
    a minimum is not reproduced: with ``eta_min > 0`` and a large T_max it adds about
    ``(eta_min / lr) * (T_max / pi)**2 * 1e-16`` after the first minimum (1.3e-11 measured for
    T_max = 5e4, eta_min / lr = 1e-3). float32 reduces the count modulo ``2 T_max`` first.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``cosine_annealing_lr``).

  Examples:
    >>> s = cosine_annealing_lr(1.0, T_max=2)
    >>> [round(float(s(k)), 6) for k in range(5)]
    [1.0, 0.5, 0.0, 0.5, 1.0]
  """
  fn = "cosine_annealing_lr"
  if isinstance(T_max, bool) or not isinstance(T_max, (numbers.Real, np.integer, np.floating)) or not T_max > 0:
    raise ValueError(f"{fn}: expected `T_max` to be a positive number, got {T_max!r}")
  T = int(T_max) if isinstance(T_max, (numbers.Integral, np.integer)) else float(T_max)
  base, eta = as_float(fn, "lr", lr), as_float(fn, "eta_min", eta_min)
  dtypes = dtypes_of(lr)

  # torch's lr right after each minimum: eta_min + (base - eta_min) * (1 - cos(pi / T)) / 2
  after_minimum = eta + (base - eta) * (1 - math.cos(math.pi / T)) / 2

  def tail(k: jax.Array, dtype: Any, last: float) -> jax.Array:
    if dtype != jnp.float64:  # reduce the count to one period first: pi * k loses ~k ulps in float32
      period = jnp.remainder(k, 2 * T) if isinstance(T, int) else jnp.remainder(k.astype(dtype), 2 * T)
      return eta + (base - eta) * (1 + jnp.cos(div(jnp.pi * period.astype(dtype), T))) / 2
    first = eta + (base - eta) * (1 + _cos_pi(k, T, dtype)) / 2
    if not isinstance(T, int):  # no count lands on a minimum: the recursion telescopes from lr
      return first
    # After a minimum torch restarts from `after_minimum`, and the ratios then telescope to
    # (1 + cos(pi k / T)) / (1 + cos(pi s / T)), s the first count after that minimum. Both 1 + cos
    # terms cancel (relative error ~1e-16 / (pi / T)^2), and torch keeps its own cancellation for the
    # whole period, so it is reproduced here term for term rather than with the exact closed form.
    start = T * (2 * ((k - 1 - T) // (2 * T)) + 1) + 1
    later = div(1 + _cos_pi(k, T, dtype), 1 + _cos_pi(start, T, dtype)) * (after_minimum - eta) + eta
    return jnp.where(k <= T, first, later)

  return restartable(lambda rule: tabulated(rule, tail, dtypes), _cosine_rule(base, T, eta))


def cosine_annealing_warm_restarts(lr: float, T_0: int, T_mult: int = 1,  # noqa: N803 - torch's names
                                   eta_min: float = 0.0) -> Schedule:
  r"""Cosine annealing with warm restarts (SGDR), periods growing by ``T_mult``.

  .. math::
     \eta_k = \eta_{\min} + \frac{\eta_0 - \eta_{\min}}{2}\left(1 + \cos\frac{\pi T_{cur}}{T_i}\right)

  where the :math:`i`-th period has length :math:`T_i = T_0 T_{mult}^i` and :math:`T_{cur}` counts
  from its start: :math:`k` lies in period :math:`i` when
  :math:`T_0 (T_{mult}^i - 1)/(T_{mult} - 1) \le k` (:math:`i T_0` for :math:`T_{mult} = 1`).
  Both are integers, computed exactly, so the value is torch's closed form term for term.

  Args:
    lr: :math:`\eta_0`, the learning rate at the start of every period.
    T_0: the first period, a positive integer.
    T_mult: the growth factor of the periods, an integer >= 1.
    eta_min: the minimum learning rate.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: ``T_0`` or ``T_mult`` is out of range, or ``eta_min`` is not a number (torch's checks).

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`` stepped without an epoch
    argument. Eager calls are bitwise torch's numbers (float64, CPU); under ``jit`` within an ulp
    (XLA's fused multiply-add). Not chainable (torch recomputes it from the
    base lr at every step).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``cosine_annealing_warm_restarts``).

  Examples:
    >>> s = cosine_annealing_warm_restarts(0.1, T_0=3, T_mult=2)
    >>> [round(float(s(k)), 4) for k in range(10)]
    [0.1, 0.075, 0.025, 0.1, 0.0933, 0.075, 0.05, 0.025, 0.0067, 0.1]
  """
  fn = "cosine_annealing_warm_restarts"
  if isinstance(T_0, bool) or not isinstance(T_0, (numbers.Integral, np.integer)) or T_0 <= 0:
    raise ValueError(f"{fn}: expected positive integer `T_0`, got {T_0!r}")
  if isinstance(T_mult, bool) or not isinstance(T_mult, (numbers.Integral, np.integer)) or T_mult < 1:
    raise ValueError(f"{fn}: expected integer `T_mult` >= 1, got {T_mult!r}")
  if isinstance(eta_min, bool) or not isinstance(eta_min, (numbers.Real, np.floating, np.integer)):
    raise ValueError(f"{fn}: expected float or int `eta_min`, got {eta_min!r} of type {type(eta_min)}")
  T_0, T_mult = int(T_0), int(T_mult)
  base, eta = as_float(fn, "lr", lr), float(eta_min)
  dtypes = dtypes_of(lr)

  def schedule(count: ArrayLike) -> jax.Array:
    k = as_count(fn, count)
    dtype = float_dtype(dtypes)
    if T_mult == 1:
      t_cur, t_i = k % T_0, jnp.asarray(T_0, dtype)
    else:
      limit = int(np.iinfo(k.dtype).max)
      starts, lengths = [0], [T_0]
      while starts[-1] + lengths[-1] <= limit:
        starts.append(starts[-1] + lengths[-1])
        lengths.append(lengths[-1] * T_mult)
      bounds = jnp.asarray(starts[1:], dtype=k.dtype).reshape((1,) * k.ndim + (-1,))
      period = jnp.sum(k[..., None] >= bounds, axis=-1)
      t_cur = k - jnp.asarray(starts, dtype=k.dtype)[period]
      t_i = jnp.asarray(np.asarray(lengths, dtype=np.float64), dtype=dtype)[period]
    return eta + (base - eta) * (1 + jnp.cos(div(jnp.pi * t_cur.astype(dtype), t_i))) / 2

  return TorchSchedule(fn, schedule)


def warmup_cosine(lr: float, warmup_steps: int, total_steps: int) -> Schedule:
  r"""Linear warmup from 0 to ``lr`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``.

  .. math::
     \eta_k = \eta_0 \cdot \begin{cases}
       k / \max(1, W) & k < W \\
       \tfrac12\left(1 + \cos(\pi \min(p_k, 1))\right),\;
       p_k = \frac{k - W}{\max(1, T - W)} & k \ge W
     \end{cases}

  with :math:`W` = ``warmup_steps`` and :math:`T` = ``total_steps``; from :math:`T` on it is 0.

  Args:
    lr: :math:`\eta_0`, the peak learning rate.
    warmup_steps: a non-negative integer no larger than ``total_steps``.
    total_steps: a positive integer.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: a step count is out of range.

  Notes:
    Torch twin: ``LambdaLR`` with the factor of ``transformers.get_cosine_schedule_with_warmup``
    (the most common torch spelling of this schedule), except that past ``total_steps`` the lr
    stays 0 where transformers' factor rises again. Equal to optax's
    ``warmup_cosine_decay_schedule(0, lr, W, T)`` up to rounding.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``warmup_cosine``).

  Examples:
    >>> s = warmup_cosine(1.0, warmup_steps=2, total_steps=4)
    >>> [round(float(s(k)), 6) for k in range(6)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
  """
  fn = "warmup_cosine"
  warmup_steps = check_int(fn, "warmup_steps", warmup_steps, minimum=0)
  total_steps = check_int(fn, "total_steps", total_steps, minimum=1)
  if warmup_steps > total_steps:
    raise ValueError(f"{fn}: expected `warmup_steps` <= `total_steps`, got {warmup_steps} > {total_steps}")
  base = as_float(fn, "lr", lr)
  dtypes = dtypes_of(lr)

  def schedule(count: ArrayLike) -> jax.Array:
    k = as_count(fn, count)
    dtype = float_dtype(dtypes)
    warm = div(k.astype(dtype), max(1, warmup_steps))
    progress = div((k - warmup_steps).astype(dtype), max(1, total_steps - warmup_steps))
    decay = jnp.maximum(0.0, 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(progress, 1.0))))
    return base * jnp.where(k < warmup_steps, warm, decay)

  return TorchSchedule(fn, schedule)
