"""Adadelta (``torch.optim.Adadelta``), with torch's ``lr=1.0`` and its sign flip always applied."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax.tree_utils import tree_cast_like

from losslab_jax.optim import _common
from losslab_jax.optim._common import ScalarOrSchedule



class AdadeltaState(NamedTuple):
  """State of :func:`scale_by_adadelta`, named as torch's per-parameter state keys.

  Attributes:
    step: number of updates so far, int32 scalar.
    square_avg: running average of ``g²`` per leaf, in the param dtype.
    acc_delta: running average of the squared updates ``Δx²`` per leaf.
  """

  step: jax.Array
  square_avg: optax.Updates
  acc_delta: optax.Updates


def _adadelta_leaf(g, sq, acc, *, rho, eps):
  """One leaf of torch's ``_single_tensor_adadelta`` (after weight decay): the direction ``Δx``."""
  cd = _common.leaf_compute_dtype(g.dtype)
  c = lambda x: jnp.asarray(x, cd)  # noqa: E731
  g = g.astype(cd)
  sq = sq.astype(cd) * c(rho) + c(_common.one_minus(rho)) * (g * g)  # mul_(rho).addcmul_(g, g, 1 - rho)
  acc = acc.astype(cd)
  std = jnp.sqrt(sq + c(eps))                                       # square_avg.add(eps).sqrt_()
  delta = jnp.sqrt(acc + c(eps)) / std * g                          # acc_delta.add(eps).sqrt_()
                                                                    #   .div_(std).mul_(grad)
  acc = acc * c(rho) + c(_common.one_minus(rho)) * (delta * delta)
  return delta, sq, acc                                             # param.add_(delta, alpha=-lr)


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> optax.GradientTransformation:
  r"""Adadelta's direction (no learning rate, no sign), torch's arithmetic.

  .. math::
     v_t = \rho v_{t-1} + (1-\rho) g_t^2, \quad
     \Delta x_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} g_t, \quad
     u_t = \rho u_{t-1} + (1-\rho) \Delta x_t^2

  Args:
    rho: ρ, in ``[0, 1]``.
    eps: ε, inside both square roots.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`AdadeltaState`.

  Examples:
    >>> import jax.numpy as jnp, numpy as np
    >>> import losslab_jax as ll
    >>> tx = ll.optim.scale_by_adadelta()
    >>> g = jnp.array([0.5, -3.0])
    >>> d, state = tx.update(g, tx.init(g))
    >>> print(np.round(np.asarray(d), 4))  # torch.optim.Adadelta(lr=1) moves the params by these
    [ 0.0032 -0.0032]
  """
  if _common.is_static(rho) and not 0.0 <= rho <= 1.0:
    raise ValueError(f"Invalid rho value: {rho}")
  _common.check_nonneg("epsilon value", eps)

  def init_fn(params):
    return AdadeltaState(step=jnp.zeros([], jnp.int32), square_avg=_common.tree_zeros_like(params),
                         acc_delta=_common.tree_zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    _common.check_updates("adadelta", updates, state.square_avg)
    leaf = lambda g, s, a: _adadelta_leaf(g, s, a, rho=rho, eps=eps)  # noqa: E731
    d, sq, acc = _common.map_leaves(leaf, 3, updates, state.square_avg, state.acc_delta)
    return tree_cast_like(d, updates), AdadeltaState(step=_common.increment(state.step),
                                           square_avg=tree_cast_like(sq, state.square_avg),
                                           acc_delta=tree_cast_like(acc, state.acc_delta))

  return optax.GradientTransformation(init_fn, update_fn)


def adadelta(lr: ScalarOrSchedule = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0,
             maximize: bool = False) -> optax.GradientTransformationExtraArgs:
  r"""``torch.optim.Adadelta`` as an optax transformation.

  torch's algorithm box (``torch.optim.Adadelta``)::

      input: γ (lr), θ0, f(θ), ρ (decay), λ (weight decay), ε, maximize
      init:  v0 <- 0 (square avg), u0 <- 0 (accumulate variables)
      for t = 1, 2, ...:
        g_t <- ±∇f(θ_{t-1})
        if λ != 0:  g_t <- g_t + λ θ_{t-1}
        v_t <- v_{t-1} ρ + g_t² (1 - ρ)
        Δx_t <- sqrt(u_{t-1} + ε) / sqrt(v_t + ε) · g_t
        u_t <- u_{t-1} ρ + Δx_t² (1 - ρ)
        θ_t <- θ_{t-1} - γ Δx_t

  The chain is ``maximize -> coupled L2 decay -> scale_by_adadelta -> -lr``. The ``-lr`` step is
  always there (torch's default ``lr=1.0``): optax's ``adadelta()`` with its default
  ``learning_rate=None`` skips the sign flip and ascends.

  Args:
    lr: γ (default 1.0), a float or a schedule.
    rho: ρ.
    eps: ε.
    weight_decay: λ, L2.
    maximize: ascend instead of descend.

  Returns:
    ``optax.GradientTransformationExtraArgs`` whose state holds an :class:`AdadeltaState`
    (``step, square_avg, acc_delta``).

  Raises:
    ValueError: torch's ``Invalid learning rate``, ``Invalid rho value``, ``Invalid epsilon
      value``, ``Invalid weight_decay value``.
      NaN fails every check (``Invalid learning rate: nan``).
    TypeError: a hyperparameter that is neither a number nor a schedule; at update time,
      integer gradients (a gradient tree unlike the params' raises ``ValueError``).

  Notes:
    Torch twin: ``torch.optim.Adadelta`` (single-tensor path).
    Parity: float64 <= 1e-10, float32 <= 1e-5 at every one of 50 steps (case ``adadelta``,
    5 configs; measured worst relative error: float32 3.1e-6, float64 4.4e-15).

  Examples:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> import losslab_jax as ll
    >>> tx = ll.optim.adadelta(lr=1.0)
    >>> p = jnp.array([1.0, -2.0])
    >>> state = tx.init(p)
    >>> for g in (jnp.array([0.5, -3.0]), jnp.array([0.2, 1.0])):
    ...   u, state = tx.update(g, state, p)
    ...   p = optax.apply_updates(p, u)
    >>> print(np.round(np.asarray(p), 4))  # torch.optim.Adadelta(lr=1.0), the same two gradients
    [ 0.9951 -1.9983]
  """
  _common.check_nonneg("learning rate", lr)
  if _common.is_static(rho) and not 0.0 <= rho <= 1.0:
    raise ValueError(f"Invalid rho value: {rho}")
  _common.check_nonneg("epsilon value", eps)
  _common.check_nonneg("weight_decay value", weight_decay)
  return _common.torch_alias("adadelta", scale_by_adadelta(rho, eps),
                             lr=lr, maximize=maximize, weight_decay=weight_decay)


# --- torch twin (read by ll.interop.torch, parity and the docs; see _registry.TorchTwin) ---
from losslab_jax.optim import _registry  # noqa: E402

_registry.register_torch_twin(_registry.TorchTwin(
    torch_class="torch.optim.Adadelta", factory=adadelta, state_type=AdadeltaState, torch_keeps_step=True,
    kwarg_map={k: k for k in ("rho", "eps", "weight_decay", "maximize")}))
