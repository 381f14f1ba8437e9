"""Rprop (resilient backpropagation) with torch's semantics (``torch.optim.Rprop``)."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from losslab_jax.optim import _common
from losslab_jax.optim._common import ScalarOrSchedule


class RpropState(NamedTuple):
  """State of :func:`scale_by_rprop`; field names are torch's per-parameter state keys.

  Attributes:
    step: number of updates so far, a scalar int32.
    prev: the (masked) gradient of the previous step, per leaf.
    step_size: the per-element step size :math:`\\eta`, per leaf.
  """

  step: jax.Array
  prev: optax.Updates
  step_size: optax.Updates


def _check_rprop(lr, etas, step_sizes) -> tuple[float, float, float, float]:
  _common.check_nonneg("learning rate", lr)
  try:
    etaminus, etaplus = etas
    step_size_min, step_size_max = step_sizes
  except (TypeError, ValueError):
    raise ValueError(f"rprop: expected `etas` and `step_sizes` to be pairs of floats, got {etas!r} and"
                     f" {step_sizes!r}") from None
  if not 0.0 < etaminus < 1.0 < etaplus:
    raise ValueError(f"Invalid eta values: {etaminus}, {etaplus}")
  if math.isnan(step_size_min) or math.isnan(step_size_max):
    raise ValueError(f"Invalid step_sizes values: {step_size_min}, {step_size_max}")
  if not step_size_min <= step_size_max:
    raise ValueError(f"rprop: expected step_sizes=(min, max) with min <= max, got {step_sizes!r}")
  return etaminus, etaplus, step_size_min, step_size_max


def _torch_sign(x: jax.Array) -> jax.Array:
  """torch.sign: like jnp.sign, but 0 for NaN (torch computes ``(0 < x) - (x < 0)``)."""
  return (x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)


def _rprop_leaf(g, prev, step_size, *, etaminus, etaplus, step_size_min, step_size_max):
  """One leaf of torch's ``_single_tensor_rprop`` (without the parameter write); returns (u, prev, eta).

  A NaN gradient element has torch-sign 0, so (as in torch) it leaves its parameter and step size
  alone, and becomes ``prev``.
  """
  dt = step_size.dtype
  g = g.astype(dt)
  s = _torch_sign(g * prev.astype(dt))
  factor = jnp.where(s > 0, jnp.asarray(etaplus, dt),
                     jnp.where(s < 0, jnp.asarray(etaminus, dt), jnp.ones([], dt)))
  step_size = jnp.clip(step_size * factor, jnp.asarray(step_size_min, dt), jnp.asarray(step_size_max, dt))
  g = jnp.where(s < 0, jnp.zeros([], dt), g)
  return _torch_sign(g) * step_size, g, step_size


def scale_by_rprop(lr: ScalarOrSchedule = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
                   step_sizes: tuple[float, float] = (1e-6, 50.0)) -> optax.GradientTransformation:
  """Rprop's step ``sign(g) * eta`` (positive: the descent direction; negate it to apply).

  Unlike the other ``scale_by_*`` layers this one carries the learning rate, because Rprop's
  ``lr`` is only the initial per-element step size :math:`\\eta_0` (as in ``optax.scale_by_rprop``).
  The update at step :math:`t` is the one torch applies at step :math:`t` (optax's
  ``scale_by_rprop`` returns the previous step's update, see :func:`rprop`).

  Args:
    lr: initial step size :math:`\\eta_0` of every element. A schedule is evaluated once, at
      count 0 (torch initialises the step sizes from the group's lr at the first step and ignores
      later lr changes).
    etas: :math:`(\\eta_-, \\eta_+)`, multiplicative decrease and increase factors,
      :math:`0 < \\eta_- < 1 < \\eta_+`.
    step_sizes: :math:`(\\Gamma_{min}, \\Gamma_{max})`, bounds on the step size.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`RpropState`.

  Raises:
    ValueError: a negative ``lr``, ``etas`` outside :math:`0 < \\eta_- < 1 < \\eta_+`, or
      ``step_sizes`` with min > max.
      NaN fails every check (``Invalid learning rate: nan``).
    TypeError: a hyperparameter that is neither a number nor a schedule; at update time,
      integer gradients (a gradient tree unlike the params' raises ``ValueError``).

  Examples:
    >>> import jax.numpy as jnp, numpy as np
    >>> import losslab_jax as ll
    >>> tx = ll.optim.scale_by_rprop(lr=0.1)
    >>> p, g = jnp.array([1.0, -2.0]), jnp.array([0.5, -3.0])
    >>> d, state = tx.update(g, tx.init(p), p)
    >>> print(np.round(np.asarray(d), 4))  # step 1: the step size lr times sign(g), negated param change
    [ 0.1 -0.1]
  """
  etaminus, etaplus, step_size_min, step_size_max = _check_rprop(lr, etas, step_sizes)

  def init_fn(params):
    lr0 = _common.resolve(lr, jnp.zeros([], jnp.int32))
    return RpropState(step=jnp.zeros([], jnp.int32),
                      prev=_common.tree_zeros_like(params),
                      step_size=jax.tree.map(lambda p: jnp.full_like(p, lr0), params))

  def update_fn(updates, state, params=None):
    del params
    _common.check_updates("rprop", updates, state.prev)
    leaf = lambda g, prev, eta: _rprop_leaf(  # noqa: E731
        g, prev, eta, etaminus=etaminus, etaplus=etaplus, step_size_min=step_size_min,
        step_size_max=step_size_max)
    out = jax.tree.map(leaf, updates, state.prev, state.step_size)
    u, prev, step_size = jax.tree.transpose(jax.tree.structure(updates), jax.tree.structure((0, 0, 0)), out)
    u = jax.tree.map(lambda a, g: a.astype(g.dtype), u, updates)
    return u, RpropState(step=_common.increment(state.step), prev=prev, step_size=step_size)

  return optax.GradientTransformation(init_fn, update_fn)


def rprop(lr: ScalarOrSchedule = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
          step_sizes: tuple[float, float] = (1e-6, 50.0),
          maximize: bool = False) -> optax.GradientTransformationExtraArgs:
  """The resilient backpropagation algorithm, step for step as ``torch.optim.Rprop``.

  Each element keeps its own step size, grown by :math:`\\eta_+` while the gradient keeps its
  sign and shrunk by :math:`\\eta_-` when it flips; only the sign of the gradient is used. Suited
  to full-batch training.

  torch's algorithm box (:math:`g` is negated first if ``maximize``)::

    state: prev = 0, eta = full(lr)                      (at the first step)
    s      = sign(g * prev)
    eta    = clamp(eta * (eta_plus if s > 0 else eta_minus if s < 0 else 1), min_step, max_step)
    g      = 0 where s < 0
    p      = p - sign(g) * eta
    prev   = g

  Args:
    lr: initial step size (a float, or a schedule of which only ``schedule(0)`` is used: torch
      ignores later changes of the group's lr).
    etas: ``(etaminus, etaplus)``, :math:`0 < \\eta_- < 1 < \\eta_+`.
    step_sizes: ``(min, max)`` allowed step sizes.
    maximize: maximise the objective instead of minimising it.

  Returns:
    An ``optax.GradientTransformationExtraArgs``: ``chain(maximize, scale_by_rprop, scale(-1))``.
    Its Rprop state is an :class:`RpropState` (``step``, ``prev``, ``step_size``).

  Raises:
    ValueError: torch's checks (``Invalid learning rate``, ``Invalid eta values``) and
      ``step_sizes`` with min > max.
      NaN fails every check (``Invalid learning rate: nan``).
    TypeError: a hyperparameter that is neither a number nor a schedule; at update time,
      integer gradients (a gradient tree unlike the params' raises ``ValueError``).

  Notes:
    Torch twin: ``torch.optim.Rprop``. Differences: none in the math. Step sizes, signs and the
    eta factors are computed in the parameter dtype, as torch does.
    ``optax.rprop`` differs: it returns the *previous* step's update (all zeros at the first step;
    optax#1725) and does not clamp the step size where the sign product is 0.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``rprop``).

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> import losslab_jax as ll
    >>> tx = ll.optim.rprop(lr=0.1)
    >>> p = jnp.array([1.0, -2.0], jnp.float32)
    >>> state = tx.init(p)
    >>> u, state = tx.update(jnp.array([0.5, -3.0]), state, p)  # first step: -sign(g) * lr
    >>> print(optax.apply_updates(p, u))
    [ 0.9 -1.9]
  """
  return _common.chain(_common.maximize(maximize), scale_by_rprop(lr, etas, step_sizes), optax.scale(-1.0))


# --- torch twin (read by ll.interop.torch, parity and the docs; see _registry.TorchTwin) ---
from losslab_jax.optim import _registry  # noqa: E402

_registry.register_torch_twin(_registry.TorchTwin(
    torch_class="torch.optim.Rprop", factory=rprop, state_type=RpropState, torch_keeps_step=True,
    kwarg_map={k: k for k in ("etas", "step_sizes", "maximize")}))
