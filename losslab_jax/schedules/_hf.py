"""Hugging Face transformers' schedules (``transformers.optimization``), as jit-safe ``count -> lr``.

Every transformers schedule is a ``torch.optim.lr_scheduler.LambdaLR`` whose factor is a Python
function of the step; after ``k`` calls of ``scheduler.step()`` the lr is ``lr * factor(k)``. Each
function here takes transformers' name without ``get_``, transformers' arguments with ``lr`` in place
of the optimizer, and computes the same factor with the same operations in the same order:
integer differences of step counts, ``float(max(1, ...))`` denominators, Python's left-to-right
products, so a float64 schedule is transformers' number to an ulp or two (XLA's ``cos`` and fused
multiply-adds under ``jit``).

Conventions shared with the other schedules: the count is an integer (or integer array) of
``scheduler.step()`` calls; a negative count, or a count where transformers' factor raises (a
division by zero), raises eagerly and gives NaN under ``jit``; a NaN ``lr`` gives NaN.

The torchvision recipe "linear warmup then cosine" (``SequentialLR(LinearLR, CosineAnnealingLR)``,
warming up from ``start_factor * lr`` rather than from 0) is a composition, not one of these::

    sequential_lr([linear_lr(lr, start_factor, 1.0, total_iters=W),
                   cosine_annealing_lr(lr, T_max=T - W, eta_min=eta_min)], milestones=[W])
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from losslab_jax._internal import _checks
from losslab_jax.schedules._core import Schedule, TorchSchedule, as_float, check_int, div, dtypes_of, float_dtype

_KINDS = ("linear", "cosine", "1-sqrt")


def _warmup(k: jax.Array, num_warmup_steps: int, dtype: Any) -> jax.Array:
  """transformers' ``float(current_step) / float(max(1, num_warmup_steps))``."""
  return div(k.astype(dtype), float(max(1, num_warmup_steps)))


def _check_real(fn: str, name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
    raise TypeError(f"{fn}: expected `{name}` to be a real number, got {value!r}")
  return float(value)


def _cosine_factor(k: jax.Array, num_warmup_steps: int, num_training_steps: int, num_cycles: float,
                   min_lr_rate: float, dtype: Any) -> jax.Array:
  """transformers' ``_get_cosine_schedule_with_warmup_lr_lambda`` (with ``min_lr_rate``)."""
  progress = div((k - num_warmup_steps).astype(dtype), float(max(1, num_training_steps - num_warmup_steps)))
  factor = 0.5 * (1.0 + jnp.cos(math.pi * float(num_cycles) * 2.0 * progress))
  if min_lr_rate != 0.0:
    factor = factor * (1 - min_lr_rate) + min_lr_rate
  decay = jnp.maximum(0.0, factor)
  return jnp.where(k < num_warmup_steps, _warmup(k, num_warmup_steps, dtype), decay)


def linear_schedule_with_warmup(lr: float, num_warmup_steps: int, num_training_steps: int) -> Schedule:
  r"""Linear warmup from 0 to ``lr``, then linear decay to 0 at ``num_training_steps``.

  .. math::
     \eta_k = \eta_0 \cdot \begin{cases}
       k / \max(1, W) & k < W \\
       \max\!\left(0, \dfrac{T - k}{\max(1, T - W)}\right) & k \ge W
     \end{cases}

  with :math:`W` = ``num_warmup_steps`` and :math:`T` = ``num_training_steps``; 0 from :math:`T` on.

  Args:
    lr: :math:`\eta_0`, the optimizer's learning rate. A numpy/JAX float32 scalar makes the schedule
      compute and return float32.
    num_warmup_steps: :math:`W`, a non-negative integer.
    num_training_steps: :math:`T`, a non-negative integer.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: a step count is not a non-negative integer.

  Notes:
    Torch twin: ``transformers.get_linear_schedule_with_warmup`` (a ``LambdaLR``).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``hf_linear_schedule_with_warmup``).

  Examples:
    >>> s = linear_schedule_with_warmup(1.0, num_warmup_steps=2, num_training_steps=6)
    >>> [round(float(s(k)), 6) for k in range(8)]
    [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
  """
  fn = "linear_schedule_with_warmup"
  W = check_int(fn, "num_warmup_steps", num_warmup_steps, minimum=0)
  T = check_int(fn, "num_training_steps", num_training_steps, minimum=0)
  base, dtypes = as_float(fn, "lr", lr), dtypes_of(lr)

  def schedule(k: jax.Array) -> jax.Array:
    dtype = float_dtype(dtypes)
    decay = jnp.maximum(0.0, div((T - k).astype(dtype), float(max(1, T - W))))
    return base * jnp.where(k < W, _warmup(k, W, dtype), decay)

  return TorchSchedule(fn, schedule)


def cosine_schedule_with_warmup(lr: float, num_warmup_steps: int, num_training_steps: int,
                                num_cycles: float = 0.5) -> Schedule:
  r"""Linear warmup from 0 to ``lr``, then a cosine of ``num_cycles`` waves over the remaining steps.

  .. math::
     \eta_k = \eta_0 \cdot \begin{cases}
       k / \max(1, W) & k < W \\
       \max\!\left(0, \tfrac12\left(1 + \cos(2\pi c\, p_k)\right)\right),\;
       p_k = \dfrac{k - W}{\max(1, T - W)} & k \ge W
     \end{cases}

  with :math:`c` = ``num_cycles``. With the default :math:`c = 1/2` the lr falls to 0 at :math:`T`
  and, as in transformers, rises again past it (:math:`p_k > 1`); :func:`warmup_cosine` holds 0.

  Args:
    lr: :math:`\eta_0`, the optimizer's learning rate.
    num_warmup_steps: :math:`W`, a non-negative integer.
    num_training_steps: :math:`T`, a non-negative integer.
    num_cycles: :math:`c`, the number of cosine waves over :math:`T - W` steps.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: a step count is not a non-negative integer.
    TypeError: ``num_cycles`` is not a number.

  Notes:
    Torch twin: ``transformers.get_cosine_schedule_with_warmup`` (a ``LambdaLR``).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``hf_cosine_schedule_with_warmup``).

  Examples:
    >>> s = cosine_schedule_with_warmup(1.0, num_warmup_steps=2, num_training_steps=6)
    >>> [round(float(s(k)), 6) for k in range(9)]
    [0.0, 0.5, 1.0, 0.853553, 0.5, 0.146447, 0.0, 0.146447, 0.5]
  """
  fn = "cosine_schedule_with_warmup"
  W = check_int(fn, "num_warmup_steps", num_warmup_steps, minimum=0)
  T = check_int(fn, "num_training_steps", num_training_steps, minimum=0)
  cycles = _check_real(fn, "num_cycles", num_cycles)
  base, dtypes = as_float(fn, "lr", lr), dtypes_of(lr)

  def schedule(k: jax.Array) -> jax.Array:
    return base * _cosine_factor(k, W, T, cycles, 0.0, float_dtype(dtypes))

  return TorchSchedule(fn, schedule)


def cosine_with_hard_restarts_schedule_with_warmup(lr: float, num_warmup_steps: int, num_training_steps: int,
                                                   num_cycles: int = 1) -> Schedule:
  r"""Linear warmup, then ``num_cycles`` cosine decays from ``lr`` to 0, each restarting at ``lr``.

  .. math::
     \eta_k = \eta_0 \cdot \begin{cases}
       k / \max(1, W) & k < W \\
       \max\!\left(0, \tfrac12\left(1 + \cos(\pi\, ((c\, p_k) \bmod 1))\right)\right) & W \le k,\ p_k < 1 \\
       0 & p_k \ge 1
     \end{cases}

  with :math:`p_k = (k - W) / \max(1, T - W)` and :math:`c` = ``num_cycles``.

  Args:
    lr: :math:`\eta_0`, the optimizer's learning rate.
    num_warmup_steps: :math:`W`, a non-negative integer.
    num_training_steps: :math:`T`, a non-negative integer.
    num_cycles: :math:`c`, the number of cosine decays (hard restarts) over :math:`T - W` steps.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: a step count is not a non-negative integer.
    TypeError: ``num_cycles`` is not a number.

  Notes:
    Torch twin: ``transformers.get_cosine_with_hard_restarts_schedule_with_warmup`` (a ``LambdaLR``).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``hf_cosine_with_hard_restarts_schedule_with_warmup``).

  Examples:
    >>> s = cosine_with_hard_restarts_schedule_with_warmup(1.0, 1, 9, num_cycles=2)
    >>> [round(float(s(k)), 6) for k in range(11)]
    [0.0, 1.0, 0.853553, 0.5, 0.146447, 1.0, 0.853553, 0.5, 0.146447, 0.0, 0.0]
  """
  fn = "cosine_with_hard_restarts_schedule_with_warmup"
  W = check_int(fn, "num_warmup_steps", num_warmup_steps, minimum=0)
  T = check_int(fn, "num_training_steps", num_training_steps, minimum=0)
  cycles = _check_real(fn, "num_cycles", num_cycles)
  base, dtypes = as_float(fn, "lr", lr), dtypes_of(lr)

  def schedule(k: jax.Array) -> jax.Array:
    dtype = float_dtype(dtypes)
    progress = div((k - W).astype(dtype), float(max(1, T - W)))
    wave = jnp.maximum(0.0, 0.5 * (1.0 + jnp.cos(math.pi * jnp.remainder(cycles * progress, 1.0))))
    decay = jnp.where(progress >= 1.0, jnp.zeros((), dtype), wave)
    return base * jnp.where(k < W, _warmup(k, W, dtype), decay)

  return TorchSchedule(fn, schedule)


def polynomial_decay_schedule_with_warmup(lr: float, num_warmup_steps: int, num_training_steps: int,
                                          lr_end: float = 1e-7, power: float = 1.0) -> Schedule:
  r"""Linear warmup, then polynomial decay from ``lr`` to ``lr_end`` at ``num_training_steps``.

  .. math::
     \eta_k = \eta_0 \cdot \begin{cases}
       k / \max(1, W) & k < W \\
       \left((\eta_0 - \eta_{end}) \left(1 - \dfrac{k - W}{T - W}\right)^{p} + \eta_{end}\right) / \eta_0
         & W \le k \le T \\
       \eta_{end} / \eta_0 & k > T
     \end{cases}

  with :math:`p` = ``power``: the factor is divided by :math:`\eta_0` and multiplied back, as
  transformers' ``LambdaLR`` does (its ``lr_init`` is the optimizer's lr, here ``lr``).

  Args:
    lr: :math:`\eta_0`, the optimizer's learning rate; must exceed ``lr_end``.
    num_warmup_steps: :math:`W`, a non-negative integer.
    num_training_steps: :math:`T`, a non-negative integer.
    lr_end: :math:`\eta_{end}`, the final learning rate.
    power: :math:`p`, the power of the decay (1: linear).

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: ``lr`` is not larger than ``lr_end`` (transformers' check and message), or a step
      count is not a non-negative integer. With :math:`W = T` an eager call at count :math:`T`
      raises (transformers divides by zero there); under ``jit`` that count gives NaN.
    TypeError: ``lr_end`` or ``power`` is not a number.

  Notes:
    Torch twin: ``transformers.get_polynomial_decay_schedule_with_warmup`` (a ``LambdaLR``).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``hf_polynomial_decay_schedule_with_warmup``).

  Examples:
    >>> s = polynomial_decay_schedule_with_warmup(1.0, 1, 5, lr_end=0.2, power=2.0)
    >>> [round(float(s(k)), 6) for k in range(7)]
    [0.0, 1.0, 0.65, 0.4, 0.25, 0.2, 0.2]
  """
  fn = "polynomial_decay_schedule_with_warmup"
  W = check_int(fn, "num_warmup_steps", num_warmup_steps, minimum=0)
  T = check_int(fn, "num_training_steps", num_training_steps, minimum=0)
  end, p = _check_real(fn, "lr_end", lr_end), _check_real(fn, "power", power)
  base, dtypes = as_float(fn, "lr", lr), dtypes_of(lr)
  if not base > end:
    raise ValueError(f"{fn}: lr_end ({lr_end}) must be smaller than initial lr ({lr})")
  lr_range, decay_steps = base - end, T - W

  def schedule(k: jax.Array) -> jax.Array:
    if decay_steps == 0:
      _checks.raise_if_concrete(fn, k == T, f"num_warmup_steps == num_training_steps == {T}: count {T} divides"
                                " by zero (transformers: ZeroDivisionError; a traced count gives NaN)")
    dtype = float_dtype(dtypes)
    pct_remaining = 1 - div((k - W).astype(dtype), float(decay_steps))
    decay = div(lr_range * jnp.power(pct_remaining, p) + end, base)
    factor = jnp.where(k > T, jnp.asarray(end / base, dtype), decay)
    return base * jnp.where(k < W, _warmup(k, W, dtype), factor)

  return TorchSchedule(fn, schedule)


def constant_schedule_with_warmup(lr: float, num_warmup_steps: int) -> Schedule:
  r"""Linear warmup from 0 to ``lr`` over ``num_warmup_steps``, then constant.

  .. math::
     \eta_k = \eta_0 \cdot \min\!\left(1, \frac{k}{\max(1, W)}\right)

  Args:
    lr: :math:`\eta_0`, the optimizer's learning rate.
    num_warmup_steps: :math:`W`, a non-negative integer.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: ``num_warmup_steps`` is not a non-negative integer.

  Notes:
    Torch twin: ``transformers.get_constant_schedule_with_warmup`` (a ``LambdaLR``).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``hf_constant_schedule_with_warmup``).

  Examples:
    >>> s = constant_schedule_with_warmup(0.1, num_warmup_steps=4)
    >>> [round(float(s(k)), 6) for k in range(6)]
    [0.0, 0.025, 0.05, 0.075, 0.1, 0.1]
  """
  fn = "constant_schedule_with_warmup"
  W = check_int(fn, "num_warmup_steps", num_warmup_steps, minimum=0)
  base, dtypes = as_float(fn, "lr", lr), dtypes_of(lr)

  def schedule(k: jax.Array) -> jax.Array:
    dtype = float_dtype(dtypes)
    return base * jnp.where(k < W, _warmup(k, W, dtype), jnp.ones((), dtype))

  return TorchSchedule(fn, schedule)


def inverse_sqrt_schedule(lr: float, num_warmup_steps: int, timescale: int | None = None) -> Schedule:
  r"""Linear warmup, then decay as the inverse square root of the step.

  .. math::
     \eta_k = \eta_0 \cdot \begin{cases}
       k / \max(1, W) & k < W \\
       1 \big/ \sqrt{(k + \tau - W) / \tau} & k \ge W
     \end{cases}

  with :math:`\tau` = ``timescale`` (default: :math:`W`, or 10000 when :math:`W = 0`), so the lr is
  :math:`\eta_0` at :math:`k = W` and halves by :math:`k = W + 3\tau`.

  Args:
    lr: :math:`\eta_0`, the optimizer's learning rate.
    num_warmup_steps: :math:`W`, a non-negative integer.
    timescale: :math:`\tau`, a positive number, or ``None``.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: ``num_warmup_steps`` is not a non-negative integer, or ``timescale`` is not positive
      (transformers would divide by zero or take the root of a negative number).

  Notes:
    Torch twin: ``transformers.get_inverse_sqrt_schedule`` (a ``LambdaLR``).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``hf_inverse_sqrt_schedule``).

  Examples:
    >>> s = inverse_sqrt_schedule(1.0, num_warmup_steps=2)
    >>> [round(float(s(k)), 6) for k in (0, 1, 2, 4, 8)]
    [0.0, 0.5, 1.0, 0.707107, 0.5]
  """
  fn = "inverse_sqrt_schedule"
  W = check_int(fn, "num_warmup_steps", num_warmup_steps, minimum=0)
  if timescale is None:
    timescale = W or 10_000
  if isinstance(timescale, bool) or not isinstance(timescale, (numbers.Real, np.integer, np.floating)) \
      or not timescale > 0:
    raise ValueError(f"{fn}: expected `timescale` to be a positive number or None, got {timescale!r}")
  tau = int(timescale) if isinstance(timescale, (numbers.Integral, np.integer)) else float(timescale)
  shift = tau - W
  base, dtypes = as_float(fn, "lr", lr), dtypes_of(lr)

  def schedule(k: jax.Array) -> jax.Array:
    dtype = float_dtype(dtypes)
    shifted = (k + shift).astype(dtype) if isinstance(shift, int) else k.astype(dtype) + shift
    decay = 1.0 / jnp.sqrt(div(shifted, tau))
    return base * jnp.where(k < W, _warmup(k, W, dtype), decay)

  return TorchSchedule(fn, schedule)


def _shape(kind: str, progress: jax.Array, *, rising: bool, num_cycles: float) -> jax.Array:
  """wsd's warmup (``rising``) or decay curve at ``progress`` in [0, 1]."""
  if kind == "linear":
    return progress if rising else 1.0 - progress
  if kind == "cosine":
    if rising:
      return 0.5 * (1.0 - jnp.cos(math.pi * progress))
    return 0.5 * (1.0 + jnp.cos(math.pi * num_cycles * 2.0 * progress))
  return 1.0 - jnp.sqrt(1.0 - progress) if rising else 1.0 - jnp.sqrt(progress)


def wsd_schedule(lr: float, num_warmup_steps: int, num_decay_steps: int, num_training_steps: int | None = None,
                 num_stable_steps: int | None = None, warmup_type: str = "linear", decay_type: str = "cosine",
                 min_lr_ratio: float = 0.0, num_cycles: float = 0.5) -> Schedule:
  r"""Warmup-stable-decay: warm up to ``lr``, hold it, decay to ``min_lr_ratio * lr``, then hold that.

  .. math::
     \eta_k = \eta_0 \cdot \begin{cases}
       \max\!\left(0, r + (1 - r)\, w(k / \max(1, W))\right) & k < W \\
       1 & W \le k < W + S \\
       \max\!\left(0, r + (1 - r)\, d\big((k - W - S) / \max(1, D)\big)\right) & W + S \le k < W + S + D \\
       r & k \ge W + S + D
     \end{cases}

  with :math:`r` = ``min_lr_ratio`` (computed as ``f * (1 - r) + r``), the warmup curve :math:`w(p)`
  = :math:`p` (``"linear"``), :math:`\tfrac12(1 - \cos\pi p)` (``"cosine"``) or
  :math:`1 - \sqrt{1 - p}` (``"1-sqrt"``), and the decay curve :math:`d(p)` = :math:`1 - p`,
  :math:`\tfrac12(1 + \cos 2\pi c p)` (:math:`c` = ``num_cycles``) or :math:`1 - \sqrt{p}`.

  Args:
    lr: :math:`\eta_0`, the optimizer's learning rate.
    num_warmup_steps: :math:`W`, a non-negative integer.
    num_decay_steps: :math:`D`, a non-negative integer.
    num_training_steps: the total, a non-negative integer: :math:`S = T - W - D` when
      ``num_stable_steps`` is not given (negative when :math:`T < W + D`, as in transformers: the
      decay then starts before the warmup ends).
    num_stable_steps: :math:`S`, a non-negative integer; it wins over ``num_training_steps``.
    warmup_type: ``"linear"`` | ``"cosine"`` | ``"1-sqrt"``.
    decay_type: ``"linear"`` | ``"cosine"`` | ``"1-sqrt"``.
    min_lr_ratio: :math:`r`, the lr at both ends as a fraction of ``lr``.
    num_cycles: :math:`c`, for the cosine decay.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: neither ``num_training_steps`` nor ``num_stable_steps`` is given, an unknown curve
      type (transformers' checks and messages), or a step count that is not a non-negative integer.
    TypeError: ``min_lr_ratio`` or ``num_cycles`` is not a number.

  Warns:
    UserWarning: both ``num_training_steps`` and ``num_stable_steps`` are given (as transformers).

  Notes:
    Torch twin: ``transformers.get_wsd_schedule`` (a ``LambdaLR``).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``hf_wsd_schedule``).

  Examples:
    >>> s = wsd_schedule(1.0, num_warmup_steps=2, num_decay_steps=2, num_stable_steps=2, decay_type="linear",
    ...                  min_lr_ratio=0.1)
    >>> [round(float(s(k)), 6) for k in range(8)]
    [0.1, 0.55, 1.0, 1.0, 1.0, 0.55, 0.1, 0.1]
  """
  fn = "wsd_schedule"
  W = check_int(fn, "num_warmup_steps", num_warmup_steps, minimum=0)
  D = check_int(fn, "num_decay_steps", num_decay_steps, minimum=0)
  if num_training_steps is None and num_stable_steps is None:
    raise ValueError(f"{fn}: Either num_training_steps or num_stable_steps must be specified.")
  if num_training_steps is not None and num_stable_steps is not None:
    warnings.warn("Both num_training_steps and num_stable_steps are specified. num_stable_steps will be used.",
                  UserWarning, stacklevel=2)
  if warmup_type not in _KINDS:
    raise ValueError(f"{fn}: Unknown warmup type: {warmup_type}, expected 'linear', 'cosine' or '1-sqrt'")
  if decay_type not in _KINDS:
    raise ValueError(f"{fn}: Unknown decay type: {decay_type}, expected 'linear', 'cosine' or '1-sqrt'")
  if num_stable_steps is None:
    S = check_int(fn, "num_training_steps", num_training_steps, minimum=0) - W - D
  else:
    S = check_int(fn, "num_stable_steps", num_stable_steps, minimum=0)
  ratio, cycles = _check_real(fn, "min_lr_ratio", min_lr_ratio), _check_real(fn, "num_cycles", num_cycles)
  base, dtypes = as_float(fn, "lr", lr), dtypes_of(lr)

  def schedule(k: jax.Array) -> jax.Array:
    dtype = float_dtype(dtypes)
    up = _shape(warmup_type, _warmup(k, W, dtype), rising=True, num_cycles=cycles)
    down = _shape(decay_type, div((k - W - S).astype(dtype), float(max(1, D))), rising=False, num_cycles=cycles)
    up, down = (jnp.maximum(0.0, f * (1.0 - ratio) + ratio) for f in (up, down))
    factor = jnp.where(k < W + S + D, down, jnp.asarray(ratio, dtype))
    factor = jnp.where(k < W + S, jnp.ones((), dtype), factor)
    return base * jnp.where(k < W, up, factor)

  return TorchSchedule(fn, schedule)


def cosine_with_min_lr_schedule_with_warmup(lr: float, num_warmup_steps: int, num_training_steps: int,
                                            num_cycles: float = 0.5, min_lr: float | None = None,
                                            min_lr_rate: float | None = None) -> Schedule:
  r"""Linear warmup, then cosine decay from ``lr`` to a floor ``min_lr`` (or ``min_lr_rate * lr``).

  .. math::
     \eta_k = \eta_0 \cdot \begin{cases}
       k / \max(1, W) & k < W \\
       \max\!\left(0, \rho + (1 - \rho)\,\tfrac12\left(1 + \cos(2\pi c\, p_k)\right)\right) & k \ge W
     \end{cases}

  with :math:`p_k = (k - W)/\max(1, T - W)`, :math:`c` = ``num_cycles`` and :math:`\rho` =
  ``min_lr_rate``, or ``min_lr / lr`` (computed as ``f * (1 - rho) + rho``). Past :math:`T` it rises
  again, as :func:`cosine_schedule_with_warmup` does.

  Args:
    lr: :math:`\eta_0`, the optimizer's learning rate.
    num_warmup_steps: :math:`W`, a non-negative integer.
    num_training_steps: :math:`T`, a non-negative integer.
    num_cycles: :math:`c`, the number of cosine waves over :math:`T - W` steps.
    min_lr: the floor as a learning rate; exactly one of ``min_lr`` and ``min_lr_rate`` is given.
    min_lr_rate: the floor as a fraction of ``lr``.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: both or neither of ``min_lr`` and ``min_lr_rate`` (transformers' checks and
      messages), or a step count that is not a non-negative integer.
    TypeError: ``num_cycles``, ``min_lr`` or ``min_lr_rate`` is not a number.

  Notes:
    Torch twin: ``transformers.get_cosine_with_min_lr_schedule_with_warmup`` (a ``LambdaLR``).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``hf_cosine_with_min_lr_schedule_with_warmup``).

  Examples:
    >>> s = cosine_with_min_lr_schedule_with_warmup(1.0, 1, 5, min_lr=0.2)
    >>> [round(float(s(k)), 6) for k in range(7)]
    [0.0, 1.0, 0.882843, 0.6, 0.317157, 0.2, 0.317157]
  """
  fn = "cosine_with_min_lr_schedule_with_warmup"
  W = check_int(fn, "num_warmup_steps", num_warmup_steps, minimum=0)
  T = check_int(fn, "num_training_steps", num_training_steps, minimum=0)
  cycles = _check_real(fn, "num_cycles", num_cycles)
  base, dtypes = as_float(fn, "lr", lr), dtypes_of(lr)
  if min_lr is not None and min_lr_rate is not None:
    raise ValueError(f"{fn}: Only one of min_lr or min_lr_rate should be set")
  if min_lr is not None:
    rate = _check_real(fn, "min_lr", min_lr) / base
  elif min_lr_rate is None:
    raise ValueError(f"{fn}: One of min_lr or min_lr_rate should be set through the `lr_scheduler_kwargs`")
  else:
    rate = _check_real(fn, "min_lr_rate", min_lr_rate)

  def schedule(k: jax.Array) -> jax.Array:
    return base * _cosine_factor(k, W, T, cycles, rate, float_dtype(dtypes))

  return TorchSchedule(fn, schedule)
