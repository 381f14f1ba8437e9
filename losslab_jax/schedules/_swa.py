"""``torch.optim.swa_utils.SWALR``: anneal the learning rate to a constant SWA learning rate."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from losslab_jax.schedules._core import Schedule, TorchSchedule, TorchSteps, as_float, dtypes_of, tabulated


def _anneal(strategy: str):
  if strategy == "cos":
    return lambda t: (1 - math.cos(math.pi * t)) / 2
  return lambda t: t


def _swa_rule(lr: float, swa: float, epochs: int, strategy: str) -> TorchSteps:
  """torch's ``SWALR.get_lr`` in Python floats: ``step`` is the number of ``scheduler.step()``
  calls so far (torch's ``_step_count - 1``) and ``g`` the group's current lr."""
  anneal = _anneal(strategy)

  def get_lr(step: int, g: float) -> float:
    if epochs == 0:
      step = max(1, step)
    prev_t = max(0, min(1, (step - 1) / max(1, epochs)))
    prev_alpha = anneal(prev_t)
    prev_lr = swa if prev_alpha == 1 else (g - prev_alpha * swa) / (1 - prev_alpha)  # _get_initial_lr
    t = max(0, min(1, step / max(1, epochs)))
    alpha = anneal(t)
    return swa * alpha + prev_lr * (1 - alpha)

  return TorchSteps(name="swa_lr", base=lr, first=lambda g: get_lr(0, g), step=get_lr,
                    restart=lambda g: get_lr(0, g), horizon=max(epochs, 1))


def swa_lr(lr: float, swa_lr: float, anneal_epochs: int = 10, anneal_strategy: str = "cos") -> Schedule:
  r"""torch's ``SWALR``: anneal from ``lr`` to ``swa_lr`` over ``anneal_epochs`` counts, then hold.

  .. math::
     \eta_k = \alpha_k\, \eta_{swa} + (1 - \alpha_k)\, \eta_0,\qquad
     \alpha_k = a\bigl(\min(1, k / E)\bigr),\quad a(t) = \tfrac{1 - \cos \pi t}{2} \text{ (cos) or } t
     \text{ (linear)}

  torch computes this recursively: each ``step()`` first recovers the start lr from the group's
  current lr (``(lr - a_{k-1} swa) / (1 - a_{k-1})``) and then interpolates again. The chainable
  result is the spec; ``schedule(k)`` returns torch's own float64 numbers (a table built with its
  arithmetic), which agree with the closed form above to rounding. Quirk: with
  ``anneal_epochs=0`` torch counts the constructor's step as step 1, so ``schedule(0)`` is already
  ``swa_lr``.

  Args:
    lr: the optimizer's learning rate when ``SWALR`` is created (η0).
    swa_lr: the learning rate annealed to and then held.
    anneal_epochs: E >= 0, the number of ``scheduler.step()`` calls the annealing takes.
    anneal_strategy: ``"cos"`` or ``"linear"``.

  Returns:
    A schedule ``count -> lr``: ``schedule(k)`` is ``get_last_lr()[0]`` after ``k`` calls of
    ``scheduler.step()`` (SWALR is usually stepped once per epoch: see ``per_epoch``).

  Raises:
    ValueError: torch's ``anneal_strategy must be one of 'cos' or 'linear', instead got ...`` and
      ``anneal_epochs must be equal or greater than 0, got ...``; a non-finite ``lr``/``swa_lr``.

  Notes:
    Torch twin: ``torch.optim.swa_utils.SWALR(optimizer, swa_lr, anneal_epochs,
    anneal_strategy)`` on an optimizer whose lr is ``lr``. Parity: float64 <= 1e-10, float32
    <= 1e-5 (case ``swa_lr``).

  Examples:
    >>> import losslab_jax as ll
    >>> s = ll.schedules.swa_lr(0.1, 0.01, anneal_epochs=2, anneal_strategy="linear")
    >>> [round(float(s(k)), 6) for k in range(4)]
    [0.1, 0.055, 0.01, 0.01]
  """
  fn = "swa_lr"
  if anneal_strategy not in ("cos", "linear"):
    raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
  if isinstance(anneal_epochs, bool) or not isinstance(anneal_epochs, int) or anneal_epochs < 0:
    raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
  base, swa = as_float(fn, "lr", lr), as_float(fn, "swa_lr", swa_lr)
  if not (math.isfinite(base) and math.isfinite(swa)):
    raise ValueError(f"{fn}: expected finite `lr` and `swa_lr`, got {lr!r} and {swa_lr!r}")
  dtypes = dtypes_of(lr, swa_lr)
  e = max(1, anneal_epochs)

  def tail(k: jax.Array, dtype, last: float) -> jax.Array:
    # the closed form (only reached when anneal_epochs >= the table size)
    t = jnp.clip(k.astype(dtype) / e, 0.0, 1.0)
    a = (1 - jnp.cos(math.pi * t)) / 2 if anneal_strategy == "cos" else t
    del last
    return swa * a + base * (1 - a)

  rule = _swa_rule(base, swa, anneal_epochs, anneal_strategy)
  return TorchSchedule(fn, tabulated(rule, tail, dtypes))

