"""Schedules built from functions or from other schedules: LambdaLR, MultiplicativeLR, SequentialLR,
ChainedScheduler, and ``per_epoch`` (an epoch-stepped schedule driven by optimizer steps)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from losslab_jax.schedules._core import (TABLE_SIZE, Schedule, TorchSchedule, TorchSteps, as_count, as_float,
                                         check_int, dtypes_of, float_dtype, lookup, simulate, torch_kind, torch_rule)

CHAINABLE = ("step_lr", "multistep_lr", "exponential_lr", "constant_lr", "linear_lr", "polynomial_lr",
             "multiplicative_lr")


def _check_schedule(fn: str, name: str, s: Any) -> None:
  if not callable(s):
    hint = (" (reduce_lr_on_plateau is an optax transformation driven by a metric; chain it after the"
            " optimizer instead)") if hasattr(s, "update") else ""
    raise TypeError(f"{fn}: expected `{name}` to be a schedule count -> lr, got {type(s).__name__}{hint}")


# --- LambdaLR --------------------------------------------------------------------------------


def lambda_lr(lr: float, fn: Callable[[Any], Any]) -> Schedule:
  r"""The initial learning rate times a function of the count.

  .. math::
     \eta_k = \eta_0 \cdot f(k)

  Args:
    lr: :math:`\eta_0`, the initial learning rate.
    fn: :math:`f`, written with jnp operations: it receives the count as a float array (torch
      passes a Python int, whose arithmetic Python does in double: ``k / W`` is a float64 division,
      and so it is here under x64, not a float32 one) and must be traceable under ``jit``. Comparisons,
      ``%`` and ``//`` work on it as on an int; index with ``k.astype(int)``.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    TypeError: ``fn`` is not callable.

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.LambdaLR`` (one group). Equal to torch whenever ``fn``
    returns torch's factor. Not chainable (torch recomputes it from the base lr at every step).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``lambda_lr``).

  Examples:
    >>> s = lambda_lr(0.1, lambda k: 0.5 ** k)
    >>> [round(float(s(k)), 6) for k in range(3)]
    [0.1, 0.05, 0.025]
    >>> warmup = lambda_lr(1.0, lambda k: (k + 1) / 4)  # k is a float: a true division, as in torch
    >>> [round(float(warmup(k)), 6) for k in range(3)]
    [0.25, 0.5, 0.75]
  """
  name = "lambda_lr"
  if not callable(fn):
    raise TypeError(f"{name}: expected `fn` to be a function of the count, got {fn!r}")
  base = as_float(name, "lr", lr)
  dtypes = dtypes_of(lr)

  def schedule(count: ArrayLike) -> jax.Array:
    k = as_count(name, count)
    dtype = float_dtype(dtypes)
    factor = jnp.asarray(fn(k.astype(dtype)))
    if not jnp.issubdtype(factor.dtype, jnp.floating):
      factor = factor.astype(dtype)
    return (base * factor).astype(dtype)

  return TorchSchedule(name, schedule)


# --- MultiplicativeLR ------------------------------------------------------------------------


def _running_product(name: str, start: Callable[[Any], jax.Array], fn: Callable[[jax.Array], Any],
                     dtypes: tuple[Any, ...]) -> Schedule:
  """``start * fn(1) * ... * fn(k)``, multiplied left to right as torch does (a loop of k steps)."""

  @jax.jit
  def scalar(k: jax.Array) -> jax.Array:
    dtype = float_dtype(dtypes)

    def body(i: jax.Array, value: jax.Array) -> jax.Array:
      return (value * jnp.asarray(fn(i.astype(dtype)))).astype(dtype)

    return lax.fori_loop(jnp.ones_like(k), k + 1, body, start(dtype).astype(dtype))

  def schedule(count: ArrayLike) -> jax.Array:
    k = as_count(name, count)
    return jnp.vectorize(scalar)(k) if k.ndim else scalar(k)

  return schedule


def multiplicative_lr(lr: float, fn: Callable[[Any], Any]) -> Schedule:
  r"""Multiply the learning rate by ``fn(k)`` at every count.

  .. math::
     \eta_0 = \eta_{\text{init}}, \qquad \eta_k = \eta_{k-1} \cdot f(k)

  (:math:`f(0)` is never used, as in torch), computed by a loop of :math:`k` multiplications in
  torch's order.

  Args:
    lr: the initial learning rate.
    fn: :math:`f`, a jnp function of the count (a float array, as in :func:`lambda_lr`), traceable
      under ``jit``.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`). Its cost grows with the
    count (a ``fori_loop`` of ``count`` steps): meant for epoch counts; for a constant factor use
    :func:`~losslab_jax.schedules.exponential_lr`.

  Raises:
    TypeError: ``fn`` is not callable.

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.MultiplicativeLR``. Bitwise equal to torch whenever
    ``fn`` returns torch's factors. Inside :func:`sequential_lr` it restarts as torch does, from the
    previous schedule's last lr times ``fn(0)`` (not from ``lr``).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``multiplicative_lr``).

  Examples:
    >>> s = multiplicative_lr(1.0, lambda k: 0.5)
    >>> [float(s(k)) for k in range(4)]
    [1.0, 0.5, 0.25, 0.125]
  """
  name = "multiplicative_lr"
  if not callable(fn):
    raise TypeError(f"{name}: expected `fn` to be a function of the count, got {fn!r}")
  base = as_float(name, "lr", lr)
  dtypes = dtypes_of(lr)

  def restarted(prev: Callable[[], jax.Array]) -> Schedule:
    start = lambda dtype: prev().astype(dtype) * jnp.asarray(fn(jnp.zeros((), dtype)))  # noqa: E731
    return _running_product(name, start, fn, dtypes)

  factor = functools.lru_cache(maxsize=None)(lambda k: float(fn(float(k))))  # a float count, as in the loop
  rule = TorchSteps(
      name=name, base=base,
      first=lambda g: g,
      step=lambda k, g: g * factor(k),
      restart=lambda g: g * factor(0),
      horizon=None, restarted=restarted)
  schedule = _running_product(name, lambda dtype: jnp.asarray(base, dtype), fn, dtypes)
  return TorchSchedule(name, schedule, rule)


# --- SequentialLR ----------------------------------------------------------------------------


def _segment_index(k: jax.Array, milestones: Sequence[int]) -> jax.Array:
  """``bisect_right(milestones, k)`` elementwise (milestones beyond the count dtype are never hit)."""
  ms = np.asarray(milestones, dtype=np.int64)
  ms = ms[ms <= np.iinfo(k.dtype).max]
  b = jnp.asarray(ms, dtype=k.dtype).reshape((1,) * k.ndim + (-1,))
  return jnp.sum(k[..., None] >= b, axis=-1)


def _select(children: Sequence[Schedule], milestones: Sequence[int], k: jax.Array) -> jax.Array:
  """``children[i](k - milestones[i-1])`` with ``i = bisect_right(milestones, k)``."""
  index = _segment_index(k, milestones) if milestones else jnp.zeros(k.shape, jnp.int32)
  values = []
  for i, child in enumerate(children):
    start = milestones[i - 1] if i > 0 else 0
    stop = milestones[i] if i < len(milestones) else None
    local = k - start
    # Evaluate each child only inside its own segment, so a child that ends (one_cycle_lr) is never
    # asked for a count it would refuse while another child is active.
    local = jnp.clip(local, 0, max(stop - start - 1, 0)) if stop is not None else jnp.maximum(local, 0)
    values.append(jnp.asarray(child(local)))
  dtype = jnp.result_type(*[v.dtype for v in values])
  out = values[0].astype(dtype)
  for i, v in enumerate(values[1:], start=1):
    out = jnp.where(index == i, v.astype(dtype), out)
  return out


def sequential_lr(schedules: Sequence[Schedule], milestones: Sequence[int]) -> Schedule:
  r"""Run ``schedules[i]`` from ``milestones[i-1]`` on, restarted at its own count 0.

  .. math::
     \eta_k = s_i(k - m_{i-1}), \qquad i = \#\{j : m_j \le k\}, \quad m_{-1} = 0

  Each schedule restarts from its own start at its milestone rather than continuing from the
  previous one's lr (torch's ``_update_lr(0)``: the closed form at epoch 0). With milestone 0 the
  sequence starts in the second schedule. Two torch quirks are reproduced: a restarted
  :func:`cosine_annealing_lr` starts from its closed form :math:`\eta_{\min} + (\eta_0 - \eta_{\min})`
  (possibly one ulp from :math:`\eta_0`), and a restarted :func:`multiplicative_lr` continues from
  the previous lr times ``fn(0)``.

  Args:
    schedules: one or more schedules (``losslab_jax`` schedules, or any jnp functions of the count).
    milestones: ``len(schedules) - 1`` non-decreasing, non-negative integers.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`), in the promoted dtype
    of the children's values.

  Raises:
    ValueError: no schedule, a milestone count that is not ``len(schedules) - 1`` (torch's checks),
      or milestones that are negative or decreasing.
    TypeError: a schedule is not callable (``reduce_lr_on_plateau``, as in torch, cannot be part of a
      sequence).

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.SequentialLR`` (torch 2.15 semantics, pytorch#185872).
    torch's children share one optimizer and so one base lr; here each schedule keeps its own.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``sequential_lr``).

  Examples:
    >>> from losslab_jax.schedules import exponential_lr, linear_lr
    >>> s = sequential_lr([linear_lr(0.1, start_factor=0.1, total_iters=5), exponential_lr(0.1, 0.5)], [3])
    >>> [round(float(s(k)), 4) for k in range(6)]
    [0.01, 0.028, 0.046, 0.1, 0.05, 0.025]
  """
  name = "sequential_lr"
  if isinstance(schedules, (str, bytes)) or not isinstance(schedules, Sequence) or len(schedules) < 1:
    raise ValueError(f"{name}: expected at least one schedule, got {schedules!r}")
  for i, s in enumerate(schedules):
    _check_schedule(name, f"schedules[{i}]", s)
  if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
    raise TypeError(f"{name}: expected `milestones` to be a sequence of integers, got {milestones!r}")
  if len(milestones) != len(schedules) - 1:
    raise ValueError(f"{name}: expected one milestone fewer than schedules, got {len(schedules)} schedules and"
                     f" {len(milestones)} milestones")
  ms = [check_int(name, "milestones[i]", m, minimum=0) for m in milestones]
  if any(b < a for a, b in zip(ms, ms[1:])):
    raise ValueError(f"{name}: expected non-decreasing `milestones`, got {list(milestones)}")

  children: list[Schedule] = []
  for i, s in enumerate(schedules):
    rule = torch_rule(s)
    if i == 0 or ms[i - 1] == 0 or rule is None or rule.restarted is None:
      children.append(s)  # torch: the initial step (fresh), or a schedule without a torch rule
    else:
      prev_children, prev_ms, at = list(children), ms[: i - 1], ms[i - 1] - 1

      def prev(prev_children=prev_children, prev_ms=prev_ms, at=at) -> jax.Array:
        return _select(prev_children, prev_ms, jnp.asarray(at))

      children.append(rule.restarted(prev))

  def schedule(count: ArrayLike) -> jax.Array:
    return _select(children, ms, as_count(name, count))

  return TorchSchedule(name, schedule)


# --- ChainedScheduler ------------------------------------------------------------------------


def chained(schedules: Sequence[Schedule], *, lr: float | None = None) -> Schedule:
  r"""Several chainable schedules applied together: their factors multiply.

  .. math::
     \eta_k = \eta_0 \prod_i \frac{s_i(k)}{\eta_0}

  computed as torch's ``ChainedScheduler`` does: at every count each schedule's step rule changes
  the current lr in turn (:math:`((\eta_{k-1} g_{1,k}) g_{2,k}) \cdots`). The first 2048 counts (or
  all of them, when every schedule stops changing before that) are torch's own numbers; later
  counts continue from there by the formula above.

  Args:
    schedules: chainable schedules built on the same ``lr``: :func:`step_lr`, :func:`multistep_lr`,
      :func:`exponential_lr`, :func:`constant_lr`, :func:`linear_lr`, :func:`polynomial_lr`,
      :func:`multiplicative_lr`, or plain jnp functions of the count (taken as :math:`s_i` in the
      formula).
    lr: :math:`\eta_0`; needed only when no schedule is a ``losslab_jax`` one.

  Returns:
    A schedule ``count -> lr`` (see :func:`~losslab_jax.schedules.step_lr`).

  Raises:
    ValueError: no schedule; schedules built on different lrs; or a schedule torch recomputes from
      scratch at every step (one_cycle_lr, cyclic_lr, lambda_lr, cosine_annealing_warm_restarts,
      warmup_cosine, sequential_lr), which would discard the others' factors. cosine_annealing_lr is
      refused too: its torch step is affine (``eta_min + (lr - eta_min) * r``) and restarts from the
      base lr after each minimum, so its chained value has no closed form past the table.

  Notes:
    Torch twin: ``torch.optim.lr_scheduler.ChainedScheduler``. Bitwise equal to torch for the first
    2048 counts (for every count when all schedules have an end, as constant/linear/polynomial/
    multistep do).
    Parity: float64 <= 1e-10, float32 <= 1e-5 (cases ``chained``).

  Examples:
    >>> from losslab_jax.schedules import constant_lr, exponential_lr
    >>> s = chained([constant_lr(0.1, factor=0.1, total_iters=2), exponential_lr(0.1, gamma=0.9)])
    >>> [round(float(s(k)), 6) for k in range(4)]
    [0.01, 0.009, 0.081, 0.0729]
  """
  name = "chained"
  _check_chainable(name, schedules)
  rules = [torch_rule(s) for s in schedules]
  base = _common_base(name, rules, lr)
  dtypes = dtypes_of(lr) if lr is not None else ()
  exact = all(r is not None for r in rules)
  n, forever, table, anchors = _chained_table(rules, base, exact)
  output_dtype = _output_dtype_of(schedules, dtypes)

  def schedule(count: ArrayLike) -> jax.Array:
    k = as_count(name, count)
    dtype = output_dtype(k.dtype)
    if not exact:  # plain functions: the formula for every count
      out = jnp.asarray(base, dtype)
      for s in schedules:
        out = out * (jnp.asarray(s(k)).astype(dtype) / base)
      return out
    head = lookup(table, k, dtype)
    if forever:
      return head
    tail = jnp.full(k.shape, table[-1], dtype)
    for s, anchor in zip(schedules, anchors, strict=True):
      ratio = jnp.asarray(s(k)).astype(dtype) / anchor if anchor != 0 else jnp.zeros(k.shape, dtype)
      tail = tail * ratio
    return jnp.where(k < n, head, tail)

  return TorchSchedule(name, schedule)


def _check_chainable(name: str, schedules: Any) -> None:
  """At least one schedule, each callable and, when a ``losslab_jax`` one, of a kind torch chains."""
  if isinstance(schedules, (str, bytes)) or not isinstance(schedules, Sequence) or len(schedules) < 1:
    raise ValueError(f"{name}: expected at least one schedule, got {schedules!r}")
  for i, s in enumerate(schedules):
    _check_schedule(name, f"schedules[{i}]", s)
    kind = torch_kind(s)
    if kind is not None and kind not in CHAINABLE:
      why = ("its torch step is affine and restarts from the base lr at each minimum"
             if kind == "cosine_annealing_lr" else "torch recomputes it from the base lr at every step")
      raise ValueError(f"{name}: expected chainable schedules ({', '.join(CHAINABLE)}), got {kind} at index {i}"
                       f" ({why}); use sequential_lr, or lambda_lr with the product of the factors")


def _common_base(name: str, rules: Sequence[Any], lr: float | None) -> float:
  """The base lr the schedules share (torch's share one optimizer), which ``lr`` must equal when given."""
  bases = sorted({r.base for r in rules if r is not None})
  if len(bases) > 1:
    raise ValueError(f"{name}: expected schedules built on the same lr (torch's share one optimizer), got"
                     f" {bases}")
  if bases:
    base = bases[0]
    if lr is not None and as_float(name, "lr", lr) != base:
      raise ValueError(f"{name}: expected `lr` equal to the schedules' lr {base}, got {lr!r}")
    return base
  if lr is None:
    raise ValueError(f"{name}: expected `lr=` (the common base lr) when every schedule is a plain function")
  return as_float(name, "lr", lr)


def _chained_table(rules: Sequence[Any], base: float, exact: bool) -> tuple[int, bool, list[float], list[float]]:
  """``(n, forever, table, anchors)``: torch's chained lr at counts ``0 .. n-1`` (empty unless ``exact``:
  every schedule has a torch rule), whether it holds for every count, and each schedule's own value at
  ``n - 1``, where the formula takes over."""
  horizons = [r.horizon for r in rules if r is not None]
  if exact and all(h is not None for h in horizons):
    n = min(TABLE_SIZE, max(max(horizons), 0) + 1)
    forever = max(horizons) < n
  else:
    n, forever = TABLE_SIZE, False
  table: list[float] = []
  anchors: list[float] = []
  if exact:
    value = base
    for r in rules:
      value = r.first(value)
    table.append(value)
    for k in range(1, n):
      for r in rules:
        value = r.step(k, value)
      table.append(value)
    if not forever:
      anchors = [simulate(r, n)[-1] for r in rules]
  return n, forever, table, anchors


def _output_dtype_of(schedules: Sequence[Schedule], dtypes: Any) -> Callable[[Any], Any]:
  """``count dtype -> output dtype``: the promoted dtype of the children's values (and of ``lr``), cached."""
  dtype_cache: dict[Any, Any] = {}

  def output_dtype(count_dtype: Any) -> Any:
    key = (count_dtype, bool(jax.config.read("jax_enable_x64")))
    if key not in dtype_cache:
      probe = jax.ShapeDtypeStruct((), count_dtype)
      dtype_cache[key] = jnp.result_type(*[jax.eval_shape(s, probe).dtype for s in schedules],
                                         *([float_dtype(dtypes)] if dtypes else []))
    return dtype_cache[key]

  return output_dtype


# --- per_epoch -------------------------------------------------------------------------------


def per_epoch(schedule: Schedule, steps_per_epoch: int) -> Schedule:
  r"""Drive an epoch-stepped schedule with the optimizer's step count.

  .. math::
     \eta_t = s(\lfloor t / n \rfloor)

  where :math:`n` is ``steps_per_epoch``: the lr of optimizer step :math:`t` (0-based) is the
  schedule's value after :math:`\lfloor t/n \rfloor` epochs, which is what torch gives when
  ``scheduler.step()`` is called once at the end of every epoch of :math:`n` batches.

  Args:
    schedule: a schedule of the epoch count.
    steps_per_epoch: :math:`n`, a positive integer.

  Returns:
    A schedule of the optimizer step count, for ``lr=`` of any optimizer.

  Raises:
    TypeError: ``schedule`` is not callable.
    ValueError: ``steps_per_epoch`` is not a positive integer.

  Notes:
    Torch twin: any scheduler stepped once per epoch. Parity: cases ``per_epoch``.

  Examples:
    >>> from losslab_jax.schedules import step_lr
    >>> s = per_epoch(step_lr(1.0, step_size=1, gamma=0.5), steps_per_epoch=3)
    >>> [float(s(t)) for t in range(7)]
    [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
  """
  name = "per_epoch"
  _check_schedule(name, "schedule", schedule)
  steps_per_epoch = check_int(name, "steps_per_epoch", steps_per_epoch, minimum=1)

  def per_step(count: ArrayLike) -> jax.Array:
    return schedule(as_count(name, count) // steps_per_epoch)

  return per_step

