"""Step-wise and polynomial schedules (StepLR, MultiStepLR, ExponentialLR, ConstantLR, LinearLR,
PolynomialLR).

How torch computes these. Each ``scheduler.step()`` runs the *chainable* ``get_lr``, which changes
the param group's current lr (``lr <- lr * gamma``, ...) rather than evaluating a closed form, so
``get_last_lr()`` after k steps is a k-fold product whose rounding differs from ``base * gamma**k``
(by up to ~2.5e-15 relative after 2000 steps, measured). The chainable result is the spec; how it
is reproduced (a table of torch's own numbers, continued by a closed form) is described in
:mod:`losslab_jax.schedules._core`.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from losslab_jax._internal import _checks
from losslab_jax.schedules._core import (TABLE_SIZE, Schedule, TorchSchedule, TorchSteps, as_count, as_float,
                                         check_int, div, dtypes_of, float_dtype, lookup, restartable, tabulated)


def _power(gamma: float, n: jax.Array) -> jax.Array:
  """``gamma ** n`` for a float array ``n``, as ``exp(n * log(gamma))`` with ``log(gamma)`` taken in
  float64: rounding ``gamma`` itself to float32 first would cost ``n`` float32 ulps."""
  if gamma > 0:
    return jnp.exp(n * math.log(gamma))
  return jnp.power(jnp.asarray(gamma, n.dtype), n)


# --- StepLR ----------------------------------------------------------------------------------


def _step_rule(lr: float, step_size: int, gamma: float) -> TorchSteps:
  return TorchSteps(
      name="step_lr", base=lr,
      first=lambda g: g,
      step=lambda k, g: g if k % step_size != 0 else g * gamma,
      restart=lambda g: lr * gamma ** (0 // step_size),
      horizon=None)


def step_lr(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
  r"""Decay the learning rate by ``gamma`` every ``step_size`` counts.

  .. math::
     \eta_k = \eta_0 \, \gamma^{\lfloor k / s \rfloor}

  where :math:`\eta_0` is ``lr`` and :math:`s` is ``step_size``; torch multiplies the current lr by
  :math:`\gamma` whenever :math:`k` is a positive multiple of :math:`s`, and that product (not the
  power) is what ``schedule(k)`` returns.

  Args:
    lr: the initial learning rate (torch: the optimizer's lr). A numpy/JAX float32 scalar makes the
      schedule return float32.
    step_size: the period of the decay, a positive integer.
    gamma: the multiplicative factor.

  Returns:
    A schedule ``count -> lr``: ``count`` is the number of ``scheduler.step()`` calls (an integer or
    an integer array of any shape); the lr comes back with the count's shape, in the default float
    dtype (float64 under x64) unless ``lr`` carries a dtype. A negative count raises ``ValueError``
    when called eagerly and gives NaN under ``jit`` (also reported under
    :func:`losslab_jax.losses.checked`), never a plausible lr.

  Raises:
    ValueError: ``step_size`` is not a positive integer (torch divides by zero).

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.StepLR``. Bitwise equal to torch's chainable product for
    the first 2048 decays, then ``table[-1] * gamma**(n - 2047)``.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``step_lr``).

  Examples:
    >>> s = step_lr(0.1, step_size=2, gamma=0.5)
    >>> [round(float(s(k)), 6) for k in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
  """
  fn = "step_lr"
  step_size = check_int(fn, "step_size", step_size, minimum=1)
  base, g = as_float(fn, "lr", lr), as_float(fn, "gamma", gamma)
  dtypes = dtypes_of(lr)

  def build(rule: TorchSteps) -> Schedule:
    table = [rule.first(rule.base)]
    for n in range(1, TABLE_SIZE):
      table.append(rule.step(n * step_size, table[-1]))
    last = table[-1]

    def schedule(count: ArrayLike) -> jax.Array:
      k = as_count(fn, count)
      dtype = float_dtype(dtypes)
      n = k // step_size
      tail = jnp.asarray(last, dtype) * _power(g, (n - (TABLE_SIZE - 1)).astype(dtype))
      return jnp.where(n < TABLE_SIZE, lookup(table, n, dtype), tail)

    return schedule

  return restartable(build, _step_rule(base, step_size, g))


# --- MultiStepLR -----------------------------------------------------------------------------


def _multistep_rule(lr: float, milestones: tuple[int, ...], gamma: float) -> TorchSteps:
  counts = collections.Counter(milestones)
  return TorchSteps(
      name="multistep_lr", base=lr,
      first=lambda g: g * gamma ** counts[0] if 0 in counts else g,
      step=lambda k, g: g * gamma ** counts[k] if k in counts else g,
      restart=lambda g: lr * gamma ** sum(m <= 0 for m in milestones),
      horizon=max(milestones, default=0))


def multistep_lr(lr: float, milestones: Sequence[int], gamma: float = 0.1) -> Schedule:
  r"""Decay the learning rate by ``gamma`` at each milestone.

  .. math::
     \eta_k = \eta_0 \, \gamma^{\#\{m \in M : m \le k\}}

  where :math:`M` is ``milestones`` counted with multiplicity: a milestone listed twice multiplies by
  :math:`\gamma^2` when it is reached, as torch's ``Counter`` does.

  Args:
    lr: the initial learning rate.
    milestones: non-negative integer counts, in any order, duplicates allowed.
    gamma: the multiplicative factor.

  Returns:
    A schedule ``count -> lr`` (see :func:`step_lr`).

  Raises:
    ValueError: a milestone is not a non-negative integer.

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.MultiStepLR``. Bitwise equal to torch for every count
    (the lr takes ``len(set(milestones)) + 1`` values, each computed as torch computes it).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``multistep_lr``).

  Examples:
    >>> s = multistep_lr(1.0, [2, 5, 5], gamma=0.1)
    >>> [round(float(s(k)), 6) for k in (0, 2, 4, 5, 9)]
    [1.0, 0.1, 0.1, 0.001, 0.001]
  """
  fn = "multistep_lr"
  if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
    raise TypeError(f"{fn}: expected `milestones` to be a sequence of integers, got {milestones!r}")
  ms = tuple(check_int(fn, "milestones[i]", m, minimum=0) for m in milestones)
  base, g = as_float(fn, "lr", lr), as_float(fn, "gamma", gamma)
  dtypes = dtypes_of(lr)
  points = sorted(set(ms) - {0})

  def build(rule: TorchSteps) -> Schedule:
    values = [rule.first(rule.base)]
    for m in points:
      values.append(rule.step(m, values[-1]))
    bounds = np.asarray(points, dtype=np.int64)

    def schedule(count: ArrayLike) -> jax.Array:
      k = as_count(fn, count)
      dtype = float_dtype(dtypes)
      if bounds.size == 0:
        return jnp.full(k.shape, values[0], dtype)
      reachable = bounds[bounds <= np.iinfo(k.dtype).max]  # others lie beyond the count dtype
      b = jnp.asarray(reachable, dtype=k.dtype).reshape((1,) * k.ndim + (-1,))
      index = jnp.sum(k[..., None] >= b, axis=-1)
      return lookup(values, index, dtype)

    return schedule

  return restartable(build, _multistep_rule(base, ms, g))


# --- ExponentialLR ---------------------------------------------------------------------------


def _exponential_rule(lr: float, gamma: float) -> TorchSteps:
  return TorchSteps(
      name="exponential_lr", base=lr,
      first=lambda g: g,
      step=lambda k, g: g * gamma,
      restart=lambda g: lr * gamma ** 0,
      horizon=None)


def exponential_lr(lr: float, gamma: float) -> Schedule:
  r"""Decay the learning rate by ``gamma`` at every count.

  .. math::
     \eta_k = \eta_0 \, \gamma^k

  computed as torch does, as the running product :math:`((\eta_0 \gamma) \gamma) \cdots`.

  Args:
    lr: the initial learning rate.
    gamma: the multiplicative factor.

  Returns:
    A schedule ``count -> lr`` (see :func:`step_lr`).

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.ExponentialLR``. Bitwise equal to torch for counts below
    2048, then ``table[-1] * gamma**(k - 2047)`` (measured against torch's product: < 1e-13 relative
    for k < 1e5).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``exponential_lr``).

  Examples:
    >>> s = exponential_lr(1.0, gamma=0.5)
    >>> [float(s(k)) for k in range(4)]
    [1.0, 0.5, 0.25, 0.125]
  """
  fn = "exponential_lr"
  base, g = as_float(fn, "lr", lr), as_float(fn, "gamma", gamma)
  dtypes = dtypes_of(lr)

  def tail(k: jax.Array, dtype: Any, last: float) -> jax.Array:
    return jnp.asarray(last, dtype) * _power(g, (k - (TABLE_SIZE - 1)).astype(dtype))

  return restartable(lambda rule: tabulated(rule, tail, dtypes), _exponential_rule(base, g))


# --- ConstantLR ------------------------------------------------------------------------------


def _constant_rule(lr: float, factor: float, total_iters: int) -> TorchSteps:
  def step(k: int, g: float) -> float:
    if k != total_iters:
      return g
    return g * (1.0 / factor) if factor != 0.0 else math.nan  # torch: ZeroDivisionError

  return TorchSteps(
      name="constant_lr", base=lr,
      first=lambda g: g * factor,
      step=step,
      restart=lambda g: lr * (factor + (0 >= total_iters) * (1 - factor)),
      horizon=total_iters)


def constant_lr(lr: float, factor: float = 1.0 / 3, total_iters: int = 5) -> Schedule:
  r"""Scale the learning rate by ``factor`` until ``total_iters`` counts have passed.

  .. math::
     \eta_k = \begin{cases} \eta_0 f & k < T \\ (\eta_0 f) \cdot (1/f) & k \ge T \end{cases}

  where :math:`f` is ``factor`` and :math:`T` is ``total_iters``; the second value is torch's
  chainable ``lr * (1 / factor)``, which can differ from :math:`\eta_0` in the last bit.

  Args:
    lr: the initial learning rate.
    factor: a number in ``[0, 1]``.
    total_iters: the count at which the factor is removed, a non-negative integer. With
      ``total_iters=0`` torch's chainable form never removes the factor (``lr * factor`` forever),
      and so does this schedule.

  Returns:
    A schedule ``count -> lr`` (see :func:`step_lr`).

  Raises:
    ValueError: ``factor`` is outside ``[0, 1]`` (torch's check), or ``total_iters`` is negative.
      With ``factor=0``, an eager call at a count ``>= total_iters`` raises, where torch's
      ``step()`` raises ``ZeroDivisionError``; under ``jit`` those counts give NaN.

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.ConstantLR``. Bitwise equal to torch for every count.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``constant_lr``).

  Examples:
    >>> s = constant_lr(0.5, factor=0.5, total_iters=2)
    >>> [float(s(k)) for k in range(4)]
    [0.25, 0.25, 0.5, 0.5]
  """
  fn = "constant_lr"
  f = as_float(fn, "factor", factor)
  if not 0.0 <= f <= 1.0:
    raise ValueError(f"{fn}: expected `factor` between 0 and 1 (torch: Constant multiplicative factor"
                     f" expected to be between 0 and 1.), got {factor!r}")
  total_iters = check_int(fn, "total_iters", total_iters, minimum=0)
  base = as_float(fn, "lr", lr)
  dtypes = dtypes_of(lr)

  def build(rule: TorchSteps) -> Schedule:
    before = rule.first(rule.base)
    after = rule.step(total_iters, before) if total_iters > 0 else before

    def schedule(count: ArrayLike) -> jax.Array:
      k = as_count(fn, count)
      if f == 0.0 and total_iters > 0:
        _checks.raise_if_concrete(fn, k >= total_iters, f"factor=0 divides by zero at count total_iters="
                                  f"{total_iters} (torch: ZeroDivisionError); got a count >= {total_iters}")
      dtype = float_dtype(dtypes)
      return jnp.where(k >= total_iters, jnp.asarray(after, dtype), jnp.asarray(before, dtype))

    return schedule

  return restartable(build, _constant_rule(base, f, total_iters))


# --- LinearLR --------------------------------------------------------------------------------


def _linear_rule(lr: float, start_factor: float, end_factor: float, total_iters: int) -> TorchSteps:
  s, e, t = start_factor, end_factor, total_iters

  def step(k: int, g: float) -> float:
    if k > t:
      return g
    return g * (1.0 + (e - s) / (t * s + (k - 1) * (e - s)))

  return TorchSteps(
      name="linear_lr", base=lr,
      first=lambda g: g * s,
      step=step,
      restart=lambda g: lr * (s + (e - s) * min(t, 0) / t) if t != 0 else lr * s,
      horizon=t)


def linear_lr(lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
              total_iters: int = 5) -> Schedule:
  r"""Scale the learning rate by a factor moving linearly from ``start_factor`` to ``end_factor``.

  .. math::
     \eta_k = \eta_0 \left(s + (e - s) \frac{\min(k, T)}{T}\right)

  with :math:`s, e, T` = ``start_factor, end_factor, total_iters``. torch reaches it as the running
  product of :math:`1 + (e - s) / (T s + (k - 1)(e - s))`, and that product is what is returned.

  Args:
    lr: the initial learning rate.
    start_factor: in ``(0, 1]``.
    end_factor: in ``[0, 1]``.
    total_iters: the count at which the end factor is reached, a non-negative integer.

  Returns:
    A schedule ``count -> lr`` (see :func:`step_lr`).

  Raises:
    ValueError: a factor is out of range (torch's checks), or ``total_iters`` is negative.

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.LinearLR``. Bitwise equal to torch for every count when
    ``total_iters < 2048``; beyond, the closed form continues the table (~1e-15 relative).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``linear_lr``).

  Examples:
    >>> s = linear_lr(1.0, start_factor=0.5, end_factor=1.0, total_iters=2)
    >>> [float(s(k)) for k in range(4)]
    [0.5, 0.75, 1.0, 1.0]
  """
  fn = "linear_lr"
  s, e = as_float(fn, "start_factor", start_factor), as_float(fn, "end_factor", end_factor)
  if not 0.0 < s <= 1.0:
    raise ValueError(f"{fn}: expected `start_factor` greater than 0 and less or equal to 1, got {start_factor!r}")
  if not 0.0 <= e <= 1.0:
    raise ValueError(f"{fn}: expected `end_factor` between 0 and 1, got {end_factor!r}")
  t = check_int(fn, "total_iters", total_iters, minimum=0)
  base = as_float(fn, "lr", lr)
  dtypes = dtypes_of(lr)

  def tail(k: jax.Array, dtype: Any, last: float) -> jax.Array:
    frac = div((e - s) * jnp.minimum(k, t).astype(dtype), t)
    return base * (s + frac)

  return restartable(lambda rule: tabulated(rule, tail, dtypes), _linear_rule(base, s, e, t))


# --- PolynomialLR ----------------------------------------------------------------------------


def _polynomial_rule(lr: float, total_iters: int, power: float) -> TorchSteps:
  t, p = total_iters, power

  def step(k: int, g: float) -> float:
    if k > t:
      return g
    return g * ((1.0 - k / t) / (1.0 - (k - 1) / t)) ** p

  return TorchSteps(
      name="polynomial_lr", base=lr,
      first=lambda g: g,
      step=step,
      restart=lambda g: lr * (1.0 - min(t, 0) / t) ** p if t != 0 else lr,
      horizon=t)


def polynomial_lr(lr: float, total_iters: int = 5, power: float = 1.0) -> Schedule:
  r"""Decay the learning rate polynomially to 0 over ``total_iters`` counts.

  .. math::
     \eta_k = \eta_0 \left(1 - \frac{\min(k, T)}{T}\right)^p

  reached, as torch does, by the running product of
  :math:`\left((1 - k/T) / (1 - (k-1)/T)\right)^p`. It is 0 from :math:`k = T` on (for :math:`p > 0`).

  Args:
    lr: the initial learning rate.
    total_iters: :math:`T`, a non-negative integer (``0``: the lr never changes, as in torch).
    power: :math:`p \ge 0`.

  Returns:
    A schedule ``count -> lr`` (see :func:`step_lr`).

  Raises:
    ValueError: ``total_iters`` is negative, or ``power`` is negative (torch raises
      ``ZeroDivisionError`` at step ``total_iters``).

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.PolynomialLR``. Bitwise equal to torch for every count
    when ``total_iters < 2048``; beyond, the closed form continues the table.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``polynomial_lr``).

  Examples:
    >>> s = polynomial_lr(1.0, total_iters=4, power=1.0)
    >>> [float(s(k)) for k in range(6)]
    [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
  """
  fn = "polynomial_lr"
  t = check_int(fn, "total_iters", total_iters, minimum=0)
  p = as_float(fn, "power", power)
  if p < 0:
    raise ValueError(f"{fn}: expected `power` >= 0, got {power!r}")
  base = as_float(fn, "lr", lr)
  dtypes = dtypes_of(lr)

  def tail(k: jax.Array, dtype: Any, last: float) -> jax.Array:
    return base * jnp.power(1.0 - div(jnp.minimum(k, t).astype(dtype), t), jnp.asarray(p, dtype))

  return restartable(lambda rule: tabulated(rule, tail, dtypes), _polynomial_rule(base, t, p))
