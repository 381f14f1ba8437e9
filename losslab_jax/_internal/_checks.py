"""Validation that raises with messages of the form ``"<func>: expected <what>, got <what>"``.

Static checks (dtypes, shapes, choices) run at trace time. Value checks that need concrete
numbers run only when their argument is concrete (eager call); under ``jit`` they are skipped
and the loss documents what it returns instead (NaN, never a plausible number).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from losslab_jax._internal import _dtypes


def is_concrete(x: Any) -> bool:
  """True when ``x`` holds concrete values (not a tracer inside jit/vmap/grad)."""
  return not isinstance(x, Tracer)


def check_reduction(fn: str, reduction: Any, allowed: Sequence[str] = ("none", "mean", "sum")) -> None:
  if not isinstance(reduction, str) or reduction not in allowed:
    choices = " | ".join(repr(a) for a in allowed)
    raise ValueError(f"{fn}: expected reduction to be one of {choices}, got {reduction!r}")


def check_floating(fn: str, name: str, x: jax.Array) -> None:
  if not _dtypes.is_floating(x):
    raise TypeError(
        f"{fn}: expected `{name}` to be a floating array, got dtype {x.dtype} with shape {x.shape}"
        f"; cast it with `.astype(jnp.float32)`"
    )


def check_integer(fn: str, name: str, x: jax.Array, hint: str = "") -> None:
  if not _dtypes.is_integer(x):
    raise TypeError(
        f"{fn}: expected `{name}` to hold integer class indices, got dtype {x.dtype} with shape"
        f" {x.shape}" + (f"; {hint}" if hint else "")
    )


def check_same_shape(fn: str, names: tuple[str, str], a: jax.Array, b: jax.Array) -> None:
  if a.shape != b.shape:
    raise ValueError(
        f"{fn}: expected `{names[0]}` and `{names[1]}` to have the same shape, got"
        f" {a.shape} and {b.shape}"
    )


def check_broadcastable(fn: str, names: tuple[str, str], a: jax.Array | jax.ShapeDtypeStruct,
                        b: jax.Array | jax.ShapeDtypeStruct) -> tuple[int, ...]:
  try:
    return tuple(np.broadcast_shapes(a.shape, b.shape))
  except ValueError:
    raise ValueError(
        f"{fn}: expected `{names[0]}` and `{names[1]}` to have broadcastable shapes, got"
        f" {a.shape} and {b.shape}"
    ) from None


def check_ndim(fn: str, name: str, x: jax.Array, allowed: Sequence[int], what: str = "") -> None:
  if x.ndim not in allowed:
    want = " or ".join(str(n) for n in allowed)
    raise ValueError(
        f"{fn}: expected `{name}` with {want} dimensions{(' (' + what + ')') if what else ''},"
        f" got shape {x.shape}"
    )


def check_positive(fn: str, name: str, value: float, *, allow_zero: bool = False) -> None:
  ok = value >= 0 if allow_zero else value > 0
  if not ok:
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{fn}: expected `{name}` {bound}, got {value!r}")


def static_number(fn: str, name: str, value: Any) -> float:
  """``value`` as a Python float; a traced or non-numeric value raises ``TypeError``.

  For hyperparameters that choose the computation at trace time (``label_smoothing``, a norm
  degree ``p``, ``gamma``): under ``jit`` pass them as Python numbers (closed over, or marked
  static), not as traced arguments.
  """
  if not is_concrete(value):
    raise TypeError(
        f"{fn}: expected `{name}` to be a static Python number, got a traced value ({value});"
        f" pass it as a Python float (close over it, or mark it static under jit)"
    )
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number, np.ndarray, jax.Array)):
    raise TypeError(f"{fn}: expected `{name}` to be a Python number, got {value!r}")
  if np.ndim(value) != 0:
    raise TypeError(f"{fn}: expected `{name}` to be a scalar number, got shape {np.shape(value)}")
  return float(value)


def raise_if_concrete(fn: str, condition: Any, message: str) -> None:
  """Raise ``ValueError(fn: message)`` if ``condition`` is concrete and true anywhere."""
  if is_concrete(condition) and bool(np.any(np.asarray(condition))):
    raise ValueError(f"{fn}: {message}")


def check_class_indices_in_range(
    fn: str, target: jax.Array, num_classes: int, ignore_index: int | None = None
) -> None:
  """Eager-only range check for integer class targets (torch raises IndexError/RuntimeError)."""
  if not is_concrete(target):
    return
  t = np.asarray(target)
  valid = (t >= 0) & (t < num_classes)
  if ignore_index is not None:
    valid |= t == ignore_index
  if not valid.all():
    bad = t[~valid]
    raise ValueError(
        f"{fn}: expected class indices in [0, {num_classes})"
        + (f" or ignore_index={ignore_index}" if ignore_index is not None else "")
        + f", got {bad.ravel()[:5].tolist()}"
    )


def as_array(x: Any) -> jax.Array:
  return jnp.asarray(x)


# --- value checks: eager raise, or checkify under `losses.checked` --------------------------------

_VALUE_CHECKS_TRACED = [False]


class traced_value_checks:  # noqa: N801 - used as a context manager, reads like a function
  """While active, value checks on traced arrays emit ``checkify.check`` (see ``losses.checked``)."""

  def __enter__(self):
    self._prev = _VALUE_CHECKS_TRACED[0]
    _VALUE_CHECKS_TRACED[0] = True

  def __exit__(self, *exc):
    _VALUE_CHECKS_TRACED[0] = self._prev


def value_check(fn: str, ok: Any, message: str) -> None:
  """A check on values (not shapes) of the inputs.

  * concrete ``ok`` (eager call): raise ``ValueError("<fn>: <message>")`` if any entry is False;
  * traced ``ok`` inside :func:`losslab_jax.losses.checked`: a ``checkify.check`` with the same text;
  * traced otherwise (plain ``jit``): nothing here; the loss makes the offending entries NaN.
  """
  if is_concrete(ok):
    if not bool(np.all(np.asarray(ok))):
      raise ValueError(f"{fn}: {message}")
  elif _VALUE_CHECKS_TRACED[0]:
    from jax.experimental import checkify

    checkify.check(jnp.all(ok), f"{fn}: {message}")
