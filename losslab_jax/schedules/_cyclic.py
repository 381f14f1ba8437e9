"""Cyclical schedules: OneCycleLR and CyclicLR, with their momentum cycling.

torch's ``OneCycleLR`` and ``CyclicLR`` are closed forms (each ``step()`` recomputes the lr from the
step number), and with ``cycle_momentum=True`` they also write the optimizer's momentum (SGD) or
``betas[0]`` (Adam-family). Here the lr and the momentum are two schedules of the same count, to
pass as an optimizer's ``lr=`` and ``momentum=``/``betas=(schedule, b2)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from losslab_jax._internal import _checks
from losslab_jax.schedules._core import Schedule, TorchSchedule, as_count, as_float, div, dtypes_of, float_dtype

AnnealStrategy = Literal["cos", "linear"]
CyclicMode = Literal["triangular", "triangular2", "exp_range"]


# --- OneCycleLR ------------------------------------------------------------------------------


def _anneal(strategy: str, start: float, end: float, pct: jax.Array) -> jax.Array:
  """torch's ``_annealing_cos`` / ``_annealing_linear``, in the same operation order."""
  if strategy == "cos":
    return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * pct) + 1)
  return (end - start) * pct + start


def _one_cycle(fn: str, total_steps: Any, pct_start: Any, anneal_strategy: Any, three_phase: bool,
               ends: tuple[tuple[float, float], ...], dtypes: tuple[Any, ...]) -> Schedule:
  """The OneCycleLR value whose phase ``i`` anneals from ``ends[i][0]`` to ``ends[i][1]``."""
  if isinstance(total_steps, bool) or not isinstance(total_steps, (numbers.Integral, np.integer)) or total_steps <= 0:
    raise ValueError(f"{fn}: expected positive integer `total_steps`, got {total_steps!r}")
  if not isinstance(pct_start, (float, np.floating)) or not 0.0 <= pct_start <= 1.0:
    raise ValueError(f"{fn}: expected a float `pct_start` between 0 and 1, got {pct_start!r}")
  if anneal_strategy not in ("cos", "linear"):
    raise ValueError(f"{fn}: expected `anneal_strategy` 'cos' or 'linear', got {anneal_strategy!r}")
  T, pct = int(total_steps), float(pct_start)
  if three_phase:
    phase_ends = [float(pct * T) - 1, float(2 * pct * T) - 2, T - 1]
  else:
    phase_ends = [float(pct * T) - 1, T - 1]
  starts = [0.0, *phase_ends[:-1]]
  if phase_ends[0] == starts[0]:
    raise ValueError(f"{fn}: expected the warm-up phase to span more than one step, got pct_start={pct_start}"
                     f" with total_steps={T} (pct_start * total_steps == 1; torch: ZeroDivisionError)")
  # torch raises at step T + 1 ("Tried to step ..."), or at step T when the last phase has length 0.
  raise_from = T if phase_ends[-1] == starts[-1] else T + 1

  def schedule(count: ArrayLike) -> jax.Array:
    k = as_count(fn, count)
    if _checks.is_concrete(k) and bool(np.any(np.asarray(k) >= raise_from)):
      if raise_from == T + 1:
        raise ValueError(f"{fn}: Tried to step {_first_bad(k, T + 1)} times. The specified number of total"
                         f" steps is {T} (torch raises here; a traced count holds the final value)")
      raise ValueError(f"{fn}: the last phase has zero length, so count {T} divides by zero (torch:"
                       " ZeroDivisionError; a traced count holds the final value)")
    _checks.value_check(fn, k < raise_from, f"expected a count below {raise_from} (total_steps={T}; torch raises"
                        f" past the end); a traced count past the end holds the final value, count {T - 1}")
    # Past the end a traced count holds the schedule's final value (count T - 1, the annealed
    # minimum): finite and harmless, where NaN would poison every parameter with no error.
    k = jnp.where(k >= raise_from, jnp.asarray(T - 1, k.dtype), k)
    dtype = float_dtype(dtypes)
    kf = k.astype(dtype)
    out = jnp.full(k.shape, jnp.nan, dtype)
    chosen = jnp.zeros(k.shape, bool)
    for i, (start, end, (a, b)) in enumerate(zip(starts, phase_ends, ends, strict=True)):
      # torch: `step_num <= end_step or last phase`; an integer k <= end iff k <= floor(end).
      here = k <= math.floor(end) if i < len(phase_ends) - 1 else jnp.ones(k.shape, bool)
      value = _anneal(anneal_strategy, a, b, div(kf - start, end - start)).astype(dtype)
      out = jnp.where(~chosen & here, value, out)
      chosen = chosen | here
    return out.astype(dtype)

  return TorchSchedule(fn, schedule)


def _first_bad(k: jax.Array, limit: int) -> int:
  """The smallest count ``>= limit`` in a concrete ``k`` (for torch's error text)."""
  values = np.asarray(k).ravel()
  bad = values[values >= limit]
  return int(bad.min()) if bad.size else limit


def one_cycle_lr(max_lr: float, total_steps: int, pct_start: float = 0.3,
                 anneal_strategy: AnnealStrategy = "cos", div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False) -> Schedule:
  r"""The 1cycle policy: warm up to ``max_lr``, then anneal far below the initial lr.

  With :math:`\eta_{\text{init}} = \eta_{\max}/d` and :math:`\eta_{\min} = \eta_{\text{init}}/d_f`
  (``div_factor``, ``final_div_factor``), the phases end at the (float) counts
  :math:`e_1 = pT - 1` and :math:`e_2 = T - 1` (two-phase: init -> max -> min) or
  :math:`e_1 = pT - 1`, :math:`e_2 = 2pT - 2`, :math:`e_3 = T - 1` (three-phase: init -> max ->
  init -> min), where :math:`p` is ``pct_start`` and :math:`T` is ``total_steps``. Within a phase
  from :math:`e_{i-1}` (0 for the first) to :math:`e_i`, with :math:`x = (k - e_{i-1})/(e_i - e_{i-1})`,

  .. math::
     \text{cos: } \eta_k = b + \frac{a - b}{2}\,(1 + \cos \pi x), \qquad
     \text{linear: } \eta_k = (b - a)\,x + a

  anneal from the phase's start value :math:`a` to its end value :math:`b`.

  Args:
    max_lr: the peak learning rate (torch ignores the optimizer's lr, and so does this schedule).
    total_steps: :math:`T`, a positive integer.
    pct_start: :math:`p`, a float in ``[0, 1]``.
    anneal_strategy: ``"cos"`` | ``"linear"``.
    div_factor: :math:`d > 0`.
    final_div_factor: :math:`d_f > 0`.
    three_phase: use the three-phase schedule.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: an argument is out of range (torch's checks), or the warm-up phase has zero length
      (``pct_start * total_steps == 1``; torch raises ``ZeroDivisionError``). An eager call with a
      count above ``total_steps`` raises torch's ``Tried to step ... times`` error.

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.OneCycleLR``. ``schedule(total_steps)`` extrapolates the
    last phase exactly as torch does (cos rises again; three-phase linear goes negative). Past
    ``total_steps`` torch's ``step()`` raises; here an eager call raises the same error, and a traced
    count holds the schedule's final value ``schedule(total_steps - 1)`` (its annealed minimum, as
    optax's one-cycle schedule stays flat after its end) rather than NaN, which would turn every
    parameter NaN without an error. To be told instead, run the jitted step under
    :func:`losslab_jax.losses.checked`: ``err, out = jax.jit(ll.losses.checked(step))(...)``, and
    ``err.throw()`` raises the eager error's text.
    Eager calls are bitwise torch's numbers up to ``total_steps`` (float64, CPU); under ``jit``
    within an ulp (XLA's fused multiply-add). optax's ``cosine_onecycle_schedule``
    is one step late and flat after its end.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``one_cycle_lr``).

  Examples:
    >>> s = one_cycle_lr(1.0, total_steps=10)
    >>> [round(float(s(k)), 4) for k in (0, 1, 2, 3, 9, 10)]
    [0.04, 0.52, 1.0, 0.9505, 0.0, 0.0495]
  """
  fn = "one_cycle_lr"
  peak = as_float(fn, "max_lr", max_lr)
  d, d_f = as_float(fn, "div_factor", div_factor), as_float(fn, "final_div_factor", final_div_factor)
  if d <= 0 or d_f <= 0:
    raise ValueError(f"{fn}: expected positive `div_factor` and `final_div_factor`, got {div_factor!r} and"
                     f" {final_div_factor!r}")
  initial = peak / d
  lowest = initial / d_f
  ends = ((initial, peak), (peak, initial), (initial, lowest)) if three_phase else ((initial, peak), (peak, lowest))
  return _one_cycle(fn, total_steps, pct_start, anneal_strategy, bool(three_phase), ends, dtypes_of(max_lr))


def one_cycle_momentum(total_steps: int, base_momentum: float = 0.85, max_momentum: float = 0.95,
                       pct_start: float = 0.3, anneal_strategy: AnnealStrategy = "cos",
                       three_phase: bool = False) -> Schedule:
  r"""The momentum that torch's ``OneCycleLR(cycle_momentum=True)`` writes into the optimizer.

  The same phases as :func:`one_cycle_lr`, cycled inversely: max -> base while the lr warms up,
  base -> max while it anneals (two-phase); max -> base -> max -> max (three-phase).

  Args:
    total_steps, pct_start, anneal_strategy, three_phase: as in :func:`one_cycle_lr` (pass the same).
    base_momentum: the momentum at the lr's peak.
    max_momentum: the momentum at the start and the end.

  Returns:
    A schedule ``count -> momentum``. Pass it as SGD's ``momentum=`` or as ``betas=(schedule, b2)``
    of Adam-family optimizers (torch writes ``group['momentum']`` or ``group['betas'][0]``). An SGD
    that torch built with ``momentum=0`` still gets this momentum.

  Raises:
    ValueError: as :func:`one_cycle_lr`.

  Notes:
    Torch twin: the ``momentum`` / ``betas[0]`` of the param group under
    ``torch.optim.lr_scheduler.OneCycleLR``. As :func:`one_cycle_lr`: bitwise eagerly up to
    ``total_steps``, an ulp or so under ``jit``; past it,
    as :func:`one_cycle_lr`.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``one_cycle_momentum``).

  Examples:
    >>> m = one_cycle_momentum(10)
    >>> [round(float(m(k)), 4) for k in (0, 2, 9)]
    [0.95, 0.85, 0.95]
  """
  fn = "one_cycle_momentum"
  lo, hi = as_float(fn, "base_momentum", base_momentum), as_float(fn, "max_momentum", max_momentum)
  ends = ((hi, lo), (lo, hi), (hi, hi)) if three_phase else ((hi, lo), (lo, hi))
  return _one_cycle(fn, total_steps, pct_start, anneal_strategy, bool(three_phase), ends,
                    dtypes_of(base_momentum, max_momentum))


# --- CyclicLR --------------------------------------------------------------------------------


def _cyclic(fn: str, low: float, high: float, inverse: bool, step_size_up: Any, step_size_down: Any,
            mode: Any, gamma: Any, scale_fn: Callable[[jax.Array], Any] | None, scale_mode: Any,
            dtypes: tuple[Any, ...]) -> Schedule:
  """CyclicLR's value between ``low`` and ``high`` (``inverse``: momentum, from ``high`` down)."""
  for name, v in (("step_size_up", step_size_up), ("step_size_down", step_size_down)):
    if v is not None and (isinstance(v, bool) or not isinstance(v, (numbers.Real, np.integer, np.floating))):
      raise TypeError(f"{fn}: expected `{name}` to be a number, got {v!r}")
  up = float(step_size_up)
  down = float(step_size_down) if step_size_down is not None else up
  if not up > 0 or not down >= 0:
    raise ValueError(f"{fn}: expected `step_size_up` > 0 and `step_size_down` >= 0, got {step_size_up!r} and"
                     f" {step_size_down!r}")
  if scale_fn is None and mode not in ("triangular", "triangular2", "exp_range"):
    raise ValueError(f"{fn}: expected `mode` 'triangular', 'triangular2' or 'exp_range' (or a `scale_fn`),"
                     f" got {mode!r}")
  if scale_fn is not None and not callable(scale_fn):
    raise TypeError(f"{fn}: expected `scale_fn` to be a function of the cycle or count, got {scale_fn!r}")
  if scale_mode not in ("cycle", "iterations"):
    raise ValueError(f"{fn}: expected `scale_mode` 'cycle' or 'iterations', got {scale_mode!r}")
  g = as_float(fn, "gamma", gamma)
  total = up + down
  ratio = up / total
  if scale_fn is None:  # torch's _init_scale_fn fixes the mode's scale_mode
    scale_mode = "iterations" if mode == "exp_range" else "cycle"

  def schedule(count: ArrayLike) -> jax.Array:
    k = as_count(fn, count)
    dtype = float_dtype(dtypes)
    kf = k.astype(dtype)
    cycle = jnp.floor(1 + div(kf, total))
    x = 1.0 + div(kf, total) - cycle
    factor = jnp.where(x <= ratio, div(x, ratio), div(x - 1, ratio - 1))
    height = (high - low) * factor
    if scale_fn is not None:
      arg = cycle.astype(k.dtype) if scale_mode == "cycle" else k
      scaled = height * jnp.asarray(scale_fn(arg)).astype(dtype)
    elif mode == "triangular":
      scaled = height * 1.0
    elif mode == "triangular2":  # torch: 1 / (2.0 ** (cycle - 1)), exact powers of two
      scaled = height * (1 / jnp.ldexp(jnp.ones((), dtype), (cycle - 1).astype(jnp.int32)))
    else:
      scaled = height * jnp.power(jnp.asarray(g, dtype), kf)
    return (high - scaled if inverse else low + scaled).astype(dtype)

  return TorchSchedule(fn, schedule)


def cyclic_lr(base_lr: float, max_lr: float, step_size_up: int = 2000, step_size_down: int | None = None,
              mode: CyclicMode = "triangular", gamma: float = 1.0, *,
              scale_fn: Callable[[jax.Array], Any] | None = None,
              scale_mode: Literal["cycle", "iterations"] = "cycle") -> Schedule:
  r"""Cyclical learning rate (CLR): triangles between ``base_lr`` and ``max_lr``.

  .. math::
     c = \left\lfloor 1 + \frac{k}{U + D} \right\rfloor,\quad
     x = 1 + \frac{k}{U + D} - c,\quad
     s = \begin{cases} x / r & x \le r \\ (x - 1)/(r - 1) & x > r \end{cases},\quad
     \eta_k = \eta_b + (\eta_m - \eta_b)\, s\, f

  with :math:`U, D` the up and down step sizes, :math:`r = U/(U+D)`, and the amplitude scale
  :math:`f` = 1 (``"triangular"``), :math:`1/2^{c-1}` (``"triangular2"``), :math:`\gamma^k`
  (``"exp_range"``), or ``scale_fn(c)`` / ``scale_fn(k)`` (``scale_mode`` ``"cycle"`` /
  ``"iterations"``).

  Args:
    base_lr: :math:`\eta_b`, the lower bound (torch overrides the optimizer's lr with it).
    max_lr: :math:`\eta_m`, the upper bound of the cycle.
    step_size_up: :math:`U > 0`, counts in the increasing half.
    step_size_down: :math:`D \ge 0`; ``None`` means :math:`U`.
    mode: ``"triangular"`` | ``"triangular2"`` | ``"exp_range"``; ignored when ``scale_fn`` is given.
    gamma: :math:`\gamma` for ``"exp_range"``.
    scale_fn: a jnp function of the cycle number (an integer array) or of the count; overrides mode.
    scale_mode: ``"cycle"`` | ``"iterations"``, what ``scale_fn`` receives.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: an unknown mode without ``scale_fn`` (torch's check), a non-positive
      ``step_size_up`` or a negative ``step_size_down`` (torch divides by zero), or an unknown
      ``scale_mode``.

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.CyclicLR``; its momentum cycling is
    :func:`cyclic_momentum`. Eager calls are bitwise torch's numbers (float64, CPU) for the three
    modes; under ``jit`` within an ulp (XLA's fused multiply-add). It never
    ends and never raises. optax has no equivalent.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``cyclic_lr``).

  Examples:
    >>> s = cyclic_lr(0.01, 0.1, step_size_up=2, step_size_down=3, mode="triangular2")
    >>> [round(float(s(k)), 4) for k in range(11)]
    [0.01, 0.055, 0.1, 0.07, 0.04, 0.01, 0.0325, 0.055, 0.04, 0.025, 0.01]
  """
  fn = "cyclic_lr"
  low, high = as_float(fn, "base_lr", base_lr), as_float(fn, "max_lr", max_lr)
  return _cyclic(fn, low, high, False, step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode,
                 dtypes_of(base_lr, max_lr))


def cyclic_momentum(base_momentum: float = 0.8, max_momentum: float = 0.9, step_size_up: int = 2000,
                    step_size_down: int | None = None, mode: CyclicMode = "triangular", gamma: float = 1.0,
                    *, scale_fn: Callable[[jax.Array], Any] | None = None,
                    scale_mode: Literal["cycle", "iterations"] = "cycle") -> Schedule:
  r"""The momentum that torch's ``CyclicLR(cycle_momentum=True)`` writes into the optimizer.

  .. math::
     m_k = m_{\max} - (m_{\max} - m_b)\, s\, f

  with :math:`s` and :math:`f` as in :func:`cyclic_lr`: momentum is at ``max_momentum`` when the lr
  is at ``base_lr`` and at ``base_momentum`` when the lr peaks.

  Args:
    base_momentum: :math:`m_b`, the momentum at the lr's peak.
    max_momentum: :math:`m_{\max}`, the momentum at the start of each cycle.
    step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode: as in :func:`cyclic_lr`
      (pass the same).

  Returns:
    A schedule ``count -> momentum``, for SGD's ``momentum=`` or ``betas=(schedule, b2)``.

  Raises:
    ValueError: as :func:`cyclic_lr`.

  Notes:
    Torch twin: the ``momentum`` / ``betas[0]`` of the param group under
    ``torch.optim.lr_scheduler.CyclicLR`` (default ``cycle_momentum=True``, which sets the momentum
    to ``max_momentum`` at construction whatever the optimizer had). Bitwise equal to torch
    eagerly, an ulp or so under ``jit``.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``cyclic_momentum``).

  Examples:
    >>> m = cyclic_momentum(0.8, 0.9, step_size_up=2)
    >>> [round(float(m(k)), 4) for k in range(5)]
    [0.9, 0.85, 0.8, 0.85, 0.9]
  """
  fn = "cyclic_momentum"
  low, high = as_float(fn, "base_momentum", base_momentum), as_float(fn, "max_momentum", max_momentum)
  return _cyclic(fn, low, high, True, step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode,
                 dtypes_of(base_momentum, max_momentum))
