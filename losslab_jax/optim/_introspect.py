"""Reading an optimizer state: ``get_step``."""

from __future__ import annotations

from typing import Any

import jax

from losslab_jax.optim._common import ScaleByLrState


def _step_holders(state: Any) -> list[Any]:
  """Every NamedTuple in ``state`` with a ``step`` field (the states of ``ll.optim``), in tree order."""
  found: list[Any] = []

  def holds_step(node: Any) -> bool:
    if isinstance(node, tuple) and "step" in getattr(node, "_fields", ()):
      found.append(node)
      return True
    return False

  jax.tree.leaves(state, is_leaf=holds_step)
  return found


def get_step(state: Any) -> jax.Array:
  r"""The number of updates an ``ll.optim`` optimizer state has made.

  Every alias keeps two counters that agree, its ``scale_by_<name>`` state's ``step`` (torch's
  per-parameter ``state["step"]``) and the learning-rate counter of :class:`ScaleByLrState` (the
  ``count`` its ``lr`` schedule is called with), so ``optax.tree_utils.tree_get(state, "step")``
  refuses the ambiguity. This reads the learning-rate counter when there is one (what the schedule
  sees), else the one ``step`` of the state (``asgd``, ``rprop``, a bare ``scale_by_*``).

  .. math::
     k = \#\{\text{updates made}\}, \qquad \eta_{\text{next}} = s(k)

  The learning rate the next update uses is ``lr(get_step(state))`` for a schedule ``lr``, which
  is what :func:`losslab_jax.monitor.learning_rate` returns (torch's ``scheduler.get_last_lr()[0]``).

  Args:
    state: the state of an ``ll.optim`` optimizer (also chained with other optax transformations,
      or ``nnx.Optimizer.opt_state``), or one param group's part of a :func:`param_groups` state.

  Returns:
    The count, an int32 scalar array. Traceable: read it inside a jitted step.

  Raises:
    ValueError: the state holds no ``ll.optim`` step counter, or several that need not agree
      (:func:`param_groups` keeps one per group: pass ``state.inner_states[group]``).

  Notes:
    Torch twin: ``optimizer.state[p]["step"]`` (torch keeps one per parameter; SGD, Lion and
    RMSprop without momentum keep none).

  Examples:
    >>> import jax.numpy as jnp
    >>> import losslab_jax as ll
    >>> tx = ll.optim.adam(lr=ll.schedules.step_lr(0.1, step_size=1, gamma=0.5))
    >>> p = jnp.ones(2)
    >>> state = tx.init(p)
    >>> for _ in range(3):
    ...   _, state = tx.update(p, state, p)
    >>> int(ll.optim.get_step(state))
    3
    >>> round(float(ll.monitor.learning_rate(state, ll.schedules.step_lr(0.1, 1, 0.5))), 6)
    0.0125
  """
  holders = _step_holders(state)
  lr_counters = [h for h in holders if isinstance(h, ScaleByLrState)]
  chosen = lr_counters or holders
  if len(chosen) != 1:
    kinds = ", ".join(type(h).__name__ for h in chosen) or "none"
    raise ValueError(f"get_step: expected exactly one ll.optim step counter in the state, got {len(chosen)}"
                     f" ({kinds}); for param_groups pass one group's state, state.inner_states[name]")
  step = chosen[0].step
  # nnx.Optimizer keeps its state in nnx variables (OptArray): read the array inside
  return step if isinstance(step, jax.Array) else step[...]
