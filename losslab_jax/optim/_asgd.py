"""Averaged SGD with torch's semantics (``torch.optim.ASGD``)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from losslab_jax.optim import _common
from losslab_jax.optim._common import ScalarOrSchedule

# torch keeps `eta` and `mu` as 0-d tensors of its default scalar dtype (float32 unless
# torch.set_default_dtype(torch.float64)), also for float64 parameters; their values are rounded
# to float32 between steps, and parity needs the same rounding.
_SCALAR_DTYPE = jnp.float32


class ASGDState(NamedTuple):
  """State of :func:`scale_by_asgd`; field names are torch's per-parameter state keys.

  Attributes:
    step: number of updates so far, a scalar int32.
    eta: the step size used by the next update, a float32 scalar (torch's scalar dtype).
    mu: the averaging coefficient used by the next update, a float32 scalar.
    ax: the running average of the parameters, per leaf (the averaged iterate ASGD is named for;
      it lives only here and never feeds back into the parameters).
  """

  step: jax.Array
  eta: jax.Array
  mu: jax.Array
  ax: optax.Params


def _asgd_leaf(g, p, ax, eta, mu, lambd):
  """One leaf of torch's ``_single_tensor_asgd``; returns (update, new ax)."""
  ct = jnp.result_type(float, p.dtype)  # torch's Python-double scalars, at least the param dtype
  eta = eta.astype(ct)
  decay = (1.0 - lambd * eta).astype(p.dtype)
  new_p = p * decay - eta.astype(p.dtype) * g.astype(p.dtype)  # p.mul_(1 - lambd*eta); p.add_(g, alpha=-eta)
  u = new_p - p
  new_p = p + u  # exactly what optax.apply_updates will produce
  ax_avg = ax + (new_p - ax) * mu.astype(p.dtype)
  return u.astype(g.dtype), jnp.where(mu == 1.0, new_p, ax_avg)


def scale_by_asgd(lr: ScalarOrSchedule = 1e-2, lambd: float = 1e-4, alpha: float = 0.75,
                  t0: float = 1e6) -> optax.GradientTransformation:
  """ASGD's step: the *negated* parameter change ``-(p_new - p)``, plus the running average.

  Like :func:`~losslab_jax.optim.scale_by_rprop` this layer carries the learning rate, because
  ASGD's effective step :math:`\\eta_t` is state, decayed from ``lr``; it needs ``params``.

  Args:
    lr: base learning rate; a float or a schedule of the update count (torch reads the group's
      current lr when it computes the next :math:`\\eta`).
    lambd: decay term :math:`\\lambda`.
    alpha: power :math:`\\alpha` of the :math:`\\eta` decay.
    t0: the step after which averaging starts.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ASGDState`.

  Examples:
    >>> import jax.numpy as jnp, numpy as np
    >>> import losslab_jax as ll
    >>> tx = ll.optim.scale_by_asgd(lr=0.1, lambd=0.0)
    >>> p, g = jnp.array([1.0, -2.0]), jnp.array([0.5, -3.0])
    >>> d, state = tx.update(g, tx.init(p), p)
    >>> print(np.round(np.asarray(d), 4))  # step 1: lr * g (the negated param change, lambd = 0)
    [ 0.05 -0.3 ]
  """
  _common.check_nonneg("learning rate", lr)
  _common.check_nonneg("lambd value", lambd)
  _common.check_nonneg("alpha value", alpha)
  _common.check_not_nan("t0 value", t0)

  def init_fn(params):
    lr0 = _common.resolve(lr, jnp.zeros([], jnp.int32))
    return ASGDState(step=jnp.zeros([], jnp.int32), eta=lr0.astype(_SCALAR_DTYPE),
                     mu=jnp.ones([], _SCALAR_DTYPE), ax=_common.tree_zeros_like(params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("asgd: expected the current parameters, `update(grads, state, params)`;"
                       " ASGD's decay term and its average need them")
    _common.check_updates("asgd", updates, state.ax)
    _common.check_updates("asgd", updates, params, "the params")
    out = jax.tree.map(lambda g, p, ax: _asgd_leaf(g, p, ax, state.eta, state.mu, lambd),
                       updates, params, state.ax)
    u, ax = jax.tree.transpose(jax.tree.structure(updates), jax.tree.structure((0, 0)), out)
    u = jax.tree.map(jnp.negative, u)
    step = _common.increment(state.step)
    # eta and mu for the next step, from this step's lr (torch: computed in Python doubles after use)
    lr_k = _common.resolve(lr, state.step)
    t = step.astype(lr_k.dtype)
    eta = lr_k / (1.0 + lambd * lr_k * t) ** alpha
    mu = 1.0 / jnp.maximum(1.0, t - t0)
    new_state = ASGDState(step=step, eta=eta.astype(_SCALAR_DTYPE), mu=mu.astype(_SCALAR_DTYPE), ax=ax)
    return u, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def asgd(lr: ScalarOrSchedule = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
         weight_decay: float = 0.0, maximize: bool = False) -> optax.GradientTransformationExtraArgs:
  """Averaged stochastic gradient descent, step for step as ``torch.optim.ASGD``.

  SGD with a decaying step size :math:`\\eta_t` and a weight-decay-like shrink :math:`\\lambda`,
  that also keeps the Polyak average ``ax`` of the iterates from step ``t0`` on. The parameters
  follow the plain iterates; read the average from the state (``optax.tree_utils.tree_get(state,
  "ax")``) to evaluate or export the averaged model.

  torch's algorithm box (:math:`g` is negated first if ``maximize``; :math:`t` counts from 1)::

    state: eta = lr, mu = 1, ax = 0
    g   = g + weight_decay * p
    p   = p * (1 - lambd * eta) - eta * g
    ax  = p                       if mu == 1
        = ax + mu * (p - ax)      otherwise
    eta = lr / (1 + lambd * lr * t) ** alpha       # used by step t + 1
    mu  = 1 / max(1, t - t0)                       # used by step t + 1

  Args:
    lr: learning rate (float or schedule of the update count).
    lambd: decay term :math:`\\lambda`.
    alpha: power for the :math:`\\eta` update.
    t0: point at which to start averaging.
    weight_decay: L2 penalty added to the gradient.
    maximize: maximise the objective instead of minimising it.

  Returns:
    An ``optax.GradientTransformationExtraArgs``: ``chain(maximize, coupled weight decay,
    scale_by_asgd, scale(-1))``, whose ASGD state is an :class:`ASGDState` (``step``, ``eta``,
    ``mu``, ``ax``).
    ``update`` needs ``params``.

  Raises:
    ValueError: torch's checks (``Invalid learning rate``, ``Invalid lambd value``, ``Invalid
      alpha value``, ``Invalid weight_decay value``); at update time, missing ``params``.
      NaN fails every check (``Invalid learning rate: nan``).
    TypeError: a hyperparameter that is neither a number nor a schedule; at update time,
      integer gradients (a gradient tree unlike the params' raises ``ValueError``).

  Notes:
    Torch twin: ``torch.optim.ASGD``. ``eta`` and ``mu`` are float32 scalars, as torch's state is
    (torch's default scalar dtype), so float64 runs round them to float32 between steps exactly as
    torch does. optax has no ASGD.
    Parity: float64 <= 1e-10, float32 <= 1e-5, parameters and ``ax`` (cases ``asgd``, ``asgd_ax``).

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> import losslab_jax as ll
    >>> tx = ll.optim.asgd(lr=0.1, lambd=0.0)
    >>> p = jnp.array([1.0, -2.0], jnp.float32)
    >>> u, state = tx.update(jnp.array([0.5, -3.0]), tx.init(p), p)
    >>> print(optax.apply_updates(p, u))
    [ 0.95 -1.7 ]

  References:
    Polyak and Juditsky, `Acceleration of stochastic approximation by averaging
    <https://doi.org/10.1137/0330046>`_, 1992.
  """
  _common.check_nonneg("weight_decay value", weight_decay)
  return _common.torch_alias("asgd", scale_by_asgd(lr, lambd, alpha, t0), lr=None, maximize=maximize,
                             weight_decay=weight_decay)


# --- torch twin (read by ll.interop.torch, parity and the docs; see _registry.TorchTwin) ---
from losslab_jax.optim import _registry  # noqa: E402

_registry.register_torch_twin(_registry.TorchTwin(
    torch_class="torch.optim.ASGD", factory=asgd, state_type=ASGDState, torch_keeps_step=True,
    kwarg_map={k: k for k in ("lambd", "alpha", "t0", "weight_decay", "maximize")},
    scalar_fields=("eta", "mu")))
