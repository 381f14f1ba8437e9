"""The machinery every schedule module shares: torch's step rules, their tables, and the schedule type.

How we reproduce torch's chainable schedulers. A recursive schedule is built from a
:class:`TorchSteps`, torch's own step rule written in Python floats (the same float64 operations in
the same order). At construction the rule is run for the first :data:`TABLE_SIZE` counts (or up to
the count after which the lr never changes) and the values are kept in a constant table, so
``schedule(k)`` is bitwise torch's number for those counts; a jit-safe closed form continues the
table past its end (measured against torch's recursion: below 1e-13 relative for k < 1e5; the
recursion's own rounding grows like sqrt(k) ulps). The table lookup is one gather from a constant,
so a schedule costs no more inside a jitted step than a closed form.

Under ``jit`` XLA's algebraic simplifier would rewrite ``x / c`` as ``x * (1/c)`` and fold constant
factors; every division that torch does in Python goes through :func:`div`, which keeps it one
correctly rounded division. What remains is XLA CPU's contraction of ``a * b + c`` into one fused
multiply-add (one rounding where torch has two), so jitted closed forms can differ from eager calls
(which are bitwise torch's numbers) by an ulp or two (measured <= 3e-16 relative in float64).

The same step rules let :func:`~losslab_jax.schedules.chained` interleave several schedules exactly
as torch's ``ChainedScheduler`` does, and :func:`~losslab_jax.schedules.sequential_lr` restart a
schedule exactly as torch's ``SequentialLR`` does (``_update_lr(0)``, the closed form at epoch 0).
Every schedule of this package is a :class:`TorchSchedule`, which carries its rule (if any) and
checks the count.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from losslab_jax._internal import _checks

Schedule = Callable[[ArrayLike], jax.Array]
"""A learning-rate schedule: ``count -> lr`` (an integer count array in, a float array out)."""

TABLE_SIZE = 2048
"""Counts ``0 .. TABLE_SIZE - 1`` of a recursive schedule return torch's own float64 numbers."""


@dataclasses.dataclass(frozen=True)
class TorchSteps:
  """A chainable torch scheduler acting on one param group's lr, in Python floats.

  Attributes:
    name: the losslab_jax factory (for error messages).
    base: torch's ``initial_lr`` (the optimizer's lr when the scheduler was built).
    first: the constructor's initial step (``last_epoch = 0``): group lr -> lr.
    step: the k-th ``step()`` for k >= 1: ``(k, group lr) -> lr``.
    restart: ``SequentialLR``'s ``_update_lr(0)`` (the closed form at epoch 0): group lr -> lr.
    horizon: a count after which ``step`` never changes the lr, or ``None``.
    restarted: builds the schedule that torch's ``SequentialLR`` runs after restarting this one at a
      milestone; it receives a thunk giving the sequence's lr just before the milestone.
  """

  name: str
  base: float
  first: Callable[[float], float]
  step: Callable[[int, float], float]
  restart: Callable[[float], float]
  horizon: int | None
  restarted: Callable[[Callable[[], jax.Array]], Schedule] | None = None


def simulate(steps: TorchSteps, n: int) -> list[float]:
  """``get_last_lr()[0]`` after k = 0 .. n-1 calls of ``step()``, by torch's own arithmetic."""
  lr = steps.first(steps.base)
  out = [lr]
  for k in range(1, n):
    lr = steps.step(k, lr)
    out.append(lr)
  return out


@dataclasses.dataclass(frozen=True, eq=False)
class TorchSchedule:
  """A schedule ``count -> lr`` of this package, and what :func:`chained` and :func:`sequential_lr`
  need to know about its torch twin.

  Calling it checks the count: an integer array (``TypeError`` otherwise); a negative count raises
  ``ValueError`` when it is concrete, and comes back as NaN when it is traced (inside
  :func:`losslab_jax.losses.checked`, also a ``checkify`` error with the same text), so a step
  counter that went wrong cannot pass for a learning rate.

  Attributes:
    name: the factory's name (``"step_lr"``), used in error messages and by :func:`chained` to tell
      chainable twins from those torch recomputes from scratch at every step.
    fn: the schedule proper, called with the checked integer count array.
    rule: torch's chainable step rule, for schedules torch computes recursively (``None`` for those
      it computes in closed form).
    check_count: check the count as described above (``False`` for schedules that define their own
      reading of negative counts).
  """

  name: str
  fn: Callable[[Any], jax.Array]
  rule: TorchSteps | None = None
  check_count: bool = True

  def __call__(self, count: ArrayLike) -> jax.Array:
    if not self.check_count:
      return self.fn(count)
    k = as_count(self.name, count)
    _checks.value_check(self.name, k >= 0, "expected a non-negative count (the number of scheduler.step()"
                        " calls); a traced negative count gives NaN")
    value = jnp.asarray(self.fn(k))
    return jnp.where(k < 0, jnp.asarray(jnp.nan, value.dtype), value)


def attach(schedule: Schedule, *, closed: str) -> TorchSchedule:
  """A closed-form schedule named ``closed`` that reads counts its own way (no count check)."""
  return TorchSchedule(closed, schedule, check_count=False)


def torch_rule(schedule: Any) -> TorchSteps | None:
  """The chainable torch rule of ``schedule`` (``None`` for closed forms and plain functions)."""
  return schedule.rule if isinstance(schedule, TorchSchedule) else None


def torch_kind(schedule: Any) -> str | None:
  """The factory name of a :class:`TorchSchedule` (``None`` for a plain function)."""
  return schedule.name if isinstance(schedule, TorchSchedule) else None


def dtypes_of(*values: Any) -> tuple[Any, ...]:
  """The dtypes of the arguments that carry one (numpy/JAX scalars); Python numbers carry none."""
  return tuple(np.result_type(v) for v in values if isinstance(v, (np.generic, np.ndarray, jax.Array)))


def float_dtype(dtypes: Sequence[Any]) -> Any:
  """Output dtype: promoted from ``dtypes`` and the default float (float64 under x64)."""
  canon = [jax.dtypes.canonicalize_dtype(d) for d in dtypes if jnp.issubdtype(d, jnp.floating)]
  return jnp.result_type(*canon, float)


def as_count(fn: str, count: ArrayLike) -> jax.Array:
  """``count`` (a Python int or an integer array of any shape) as an integer array."""
  c = jnp.asarray(count)
  if not jnp.issubdtype(c.dtype, jnp.integer):
    raise TypeError(
        f"{fn}: expected an integer count (the number of scheduler.step() calls), got dtype {c.dtype}"
        f" with shape {c.shape}")
  return c


def as_float(fn: str, name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.generic, np.ndarray, jax.Array)):
    raise TypeError(f"{fn}: expected `{name}` to be a real number, got {value!r}")
  if not _checks.is_concrete(value):
    raise TypeError(f"{fn}: expected `{name}` to be a concrete number (not traced), got a tracer")
  v = np.asarray(value)
  if v.shape != ():
    raise ValueError(f"{fn}: expected `{name}` to be a scalar, got shape {v.shape}")
  return float(v)


def check_int(fn: str, name: str, value: Any, *, minimum: int) -> int:
  """An integer ``>= minimum`` (bool excluded), as torch's ``Expected positive integer ...``."""
  if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value < minimum:
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    raise ValueError(f"{fn}: expected `{name}` to be {what}, got {value!r}")
  return int(value)


def div(a: jax.Array, b: Any) -> jax.Array:
  """``a / b`` rounded once, as torch's Python division is.

  XLA's algebraic simplifier rewrites a division by a constant (or by a broadcast scalar) as a
  multiplication by its reciprocal and folds constant factors together, which moves results by an
  ulp; a divisor that comes out of an optimization barrier, at ``a``'s full shape, is left alone.
  """
  b = jnp.broadcast_to(jnp.asarray(b, a.dtype), a.shape)
  return a / lax.optimization_barrier(b)


def lookup(table: Sequence[float], index: jax.Array, dtype: Any) -> jax.Array:
  """``table[clip(index)]``: a gather from a constant."""
  t = np.asarray(table, dtype=np.float64)
  idx = jnp.clip(index, 0, t.shape[0] - 1)
  return jnp.asarray(t, dtype=dtype)[idx]


def tabulated(steps: TorchSteps, tail: Callable[[jax.Array, Any, float], jax.Array],
              dtypes: Sequence[Any]) -> Schedule:
  """torch's numbers for ``count < n`` from a table, then ``tail(count, dtype, table[-1])``.

  ``n`` is :data:`TABLE_SIZE`, or ``horizon + 1`` when that is smaller, in which case the table's last
  value holds forever (exactly torch's behaviour) and ``tail`` is never used.
  """
  n = TABLE_SIZE if steps.horizon is None else min(TABLE_SIZE, max(steps.horizon, 0) + 1)
  table = simulate(steps, n)
  exact = steps.horizon is not None and steps.horizon < n
  last = table[-1]

  def schedule(count: ArrayLike) -> jax.Array:
    k = as_count(steps.name, count)
    dtype = float_dtype(dtypes)
    value = lookup(table, k, dtype)
    if not exact:
      value = jnp.where(k < n, value, tail(k, dtype, last).astype(dtype))
    return value

  return schedule


def restartable(build: Callable[[TorchSteps], Schedule], rule: TorchSteps) -> TorchSchedule:
  """``build(rule)``, recording the rule and how ``SequentialLR`` restarts the schedule: from
  torch's closed form at epoch 0 (``rule.restart``), which depends on the base lr only."""

  def restarted(prev: Callable[[], jax.Array]) -> Schedule:
    del prev
    return build(dataclasses.replace(rule, first=rule.restart))

  rule = dataclasses.replace(rule, restarted=restarted)
  return TorchSchedule(rule.name, build(rule), rule)
