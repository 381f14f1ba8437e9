"""The learning rate an optimizer state is at, read from its step counter and the schedule."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from losslab_jax.optim._common import ScaleByLrState


def _counters(opt_state: Any) -> list[tuple[str, Any]]:
  """Every lr step counter in ``opt_state``: losslab_jax's ``ScaleByLrState.step``, else optax's
  ``ScaleByScheduleState.count`` (``optax.scale_by_schedule``, used by optax's aliases)."""
  ours: list[tuple[str, Any]] = []
  theirs: list[tuple[str, Any]] = []

  def visit(node: Any, path: str) -> None:
    if isinstance(node, ScaleByLrState):
      ours.append((path, node.step))
      return
    if isinstance(node, optax.ScaleByScheduleState):
      theirs.append((path, node.count))
      return
    if isinstance(node, tuple):
      for i, child in enumerate(node):
        visit(child, f"{path}[{i}]")
    elif isinstance(node, list):
      for i, child in enumerate(node):
        visit(child, f"{path}[{i}]")
    elif isinstance(node, Mapping):  # dicts, nnx.State
      for key, child in node.items():
        visit(child, f"{path}[{key!r}]")

  visit(opt_state, "opt_state")
  return ours or theirs


def _value(x: Any) -> Any:
  """An array, unwrapping an nnx ``Variable`` (``nnx.Optimizer.opt_state`` holds them)."""
  if isinstance(x, jax.Array):
    return x
  if hasattr(x, "get_value"):  # flax >= 0.12 deprecates `.value`
    return x.get_value()
  return x.value if hasattr(x, "value") else x


def learning_rate(opt_state: Any, lr: float | Callable[[jax.Array], jax.Array]) -> jax.Array:
  r"""The learning rate the next update of ``opt_state`` will use.

  .. math::
     \eta = s(k)

  where :math:`k` is the number of updates the state has made (its lr step counter) and :math:`s`
  is the schedule passed as the optimizer's ``lr``: torch's ``scheduler.get_last_lr()[0]`` after
  ``k`` ``optimizer.step(); scheduler.step()`` iterations, the value a torch loop logs. Traceable:
  call it inside the jitted step and return it with the loss, so reading it costs no device sync.

  Args:
    opt_state: an optimizer state (or ``nnx.Optimizer.opt_state``) holding exactly one lr step
      counter: a losslab_jax optimizer's ``ScaleByLrState``, or optax's ``ScaleByScheduleState``.
    lr: the ``lr`` the optimizer was built with: a float (returned as it is) or a schedule.

  Returns:
    A scalar array.

  Raises:
    ValueError: ``lr`` is a schedule and the state has no lr step counter, or several (param groups
      each keep their own: pass the group's part of the state).

  Notes:
    Torch twin: ``scheduler.get_last_lr()[0]`` (or ``optimizer.param_groups[0]["lr"]``).

  Examples:
    >>> import losslab_jax as ll, jax.numpy as jnp
    >>> s = ll.schedules.step_lr(0.1, step_size=1, gamma=0.5)
    >>> tx = ll.optim.sgd(lr=s)
    >>> params = {"w": jnp.ones(2)}
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   _, state = tx.update({"w": jnp.ones(2)}, state, params)
    >>> round(float(ll.monitor.learning_rate(state, s)), 6)
    0.025
  """
  if not callable(lr):
    return jnp.asarray(lr)
  found = _counters(opt_state)
  if not found:
    raise ValueError("learning_rate: expected an optimizer state with an lr step counter (a losslab_jax"
                     " optimizer's ScaleByLrState or optax's ScaleByScheduleState), found none")
  if len(found) > 1:
    where = ", ".join(path for path, _ in found)
    raise ValueError(f"learning_rate: expected one lr step counter, found {len(found)} ({where}); pass the"
                     " part of the state that belongs to the schedule's param group")
  return lr(_value(found[0][1]))
