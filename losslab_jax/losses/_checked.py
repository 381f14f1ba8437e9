"""``checked``: run-time value errors under ``jit`` via ``jax.experimental.checkify``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from losslab_jax._internal._checks import traced_value_checks


def checked(loss_fn: Callable[..., Any]) -> Callable[..., Any]:
  """Wrap a loss so value errors that only run time can see are reported under ``jit``.

  Eager calls on concrete arrays already raise ``ValueError`` for bad values (a class index out of
  range, a probability outside [0, 1], a negative variance). Under ``jit`` those checks cannot raise;
  the loss returns NaN for the offending entries instead. ``checked(loss_fn)`` returns
  ``checkify``-functionalised ``loss_fn``: it returns ``(error, loss)``, and ``error.throw()``
  raises with the same message the eager call would give.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import losslab_jax as ll
    >>> f = jax.jit(ll.losses.checked(ll.losses.binary_cross_entropy))
    >>> err, loss = f(jnp.array([0.5, 1.5]), jnp.array([0.0, 1.0]))
    >>> err.get() is not None  # 1.5 is not a probability
    True
  """
  from jax.experimental import checkify

  @functools.wraps(loss_fn)
  def traced(*args, **kwargs):
    with traced_value_checks():
      return loss_fn(*args, **kwargs)

  return checkify.checkify(traced, errors=checkify.user_checks)
