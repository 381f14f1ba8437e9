"""Adamax (``torch.optim.Adamax``): Adam with an infinity-norm second moment."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax.tree_utils import tree_cast_like

from losslab_jax.optim import _common
from losslab_jax.optim._common import ScalarOrSchedule
from losslab_jax.optim._adam import check_betas



class AdamaxState(NamedTuple):
  """State of :func:`scale_by_adamax`, named as torch's per-parameter state keys.

  Attributes:
    step: number of updates so far, int32 scalar.
    exp_avg: first moment ``m`` per leaf, in the param dtype.
    exp_inf: exponentially weighted infinity norm ``u`` per leaf.
  """

  step: jax.Array
  exp_avg: optax.Updates
  exp_inf: optax.Updates


def _adamax_leaf(g, m, u, *, beta1, beta2, eps, bc1):
  """One leaf of torch's ``_single_tensor_adamax`` (after weight decay), returning the direction."""
  cd = _common.leaf_compute_dtype(g.dtype)
  g = g.astype(cd)
  m = _common.lerp(m.astype(cd), g, _common.one_minus(beta1))             # exp_avg.lerp_(grad, 1 - beta1)
  u = jnp.maximum(u.astype(cd) * jnp.asarray(beta2, cd), jnp.abs(g) + jnp.asarray(eps, cd))  # eps inside
  return (m / u) / jnp.asarray(bc1, cd), m, u                            # addcdiv_(exp_avg, exp_inf, -lr/bc1)


def scale_by_adamax(betas: tuple[ScalarOrSchedule, float] = (0.9, 0.999),
                    eps: float = 1e-8) -> optax.GradientTransformation:
  r"""Adamax's direction (no learning rate, no sign), torch's arithmetic.

  .. math::
     m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
     u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon), \quad d_t = \frac{m_t}{(1-\beta_1^t)\, u_t}

  Args:
    betas: ``(β1, β2)``; β1 may be a schedule ``count -> β1``.
    eps: ε, added to ``|g|`` inside the maximum.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`AdamaxState`.

  Examples:
    >>> import jax.numpy as jnp, numpy as np
    >>> import losslab_jax as ll
    >>> tx = ll.optim.scale_by_adamax()
    >>> g = jnp.array([0.5, -3.0])
    >>> d, state = tx.update(g, tx.init(g))
    >>> print(np.round(np.asarray(d), 4))  # step 1: (m / (1 - β1)) / max(|g|, eps) = sign(g)
    [ 1. -1.]
  """
  check_betas(betas)
  _common.check_nonneg("epsilon value", eps)
  beta1, beta2 = betas

  def init_fn(params):
    return AdamaxState(step=jnp.zeros([], jnp.int32), exp_avg=_common.tree_zeros_like(params),
                       exp_inf=_common.tree_zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    _common.check_updates("adamax", updates, state.exp_avg)
    step = _common.increment(state.step)
    b1 = beta1 if _common.is_static(beta1) else _common.resolve(beta1, state.step)
    bc1 = _common.bias_correction(b1, step.astype(_common.scalar_dtype()))
    leaf = lambda g, m, u: _adamax_leaf(g, m, u, beta1=b1, beta2=beta2, eps=eps, bc1=bc1)  # noqa: E731
    d, m, u = _common.map_leaves(leaf, 3, updates, state.exp_avg, state.exp_inf)
    return tree_cast_like(d, updates), AdamaxState(step=step, exp_avg=tree_cast_like(m, state.exp_avg),
                                         exp_inf=tree_cast_like(u, state.exp_inf))

  return optax.GradientTransformation(init_fn, update_fn)


def adamax(lr: ScalarOrSchedule = 2e-3, betas: tuple[ScalarOrSchedule, float] = (0.9, 0.999),
           eps: float = 1e-8, weight_decay: float = 0.0,
           maximize: bool = False) -> optax.GradientTransformationExtraArgs:
  r"""``torch.optim.Adamax`` as an optax transformation.

  torch's algorithm box (``torch.optim.Adamax``)::

      input: lr γ, betas (β1, β2), θ0, f(θ), λ (weight decay), ε, maximize
      init:  m0 <- 0, u0 <- 0
      for t = 1, 2, ...:
        g_t <- -∇f(θ_{t-1}) if maximize else ∇f(θ_{t-1})
        if λ != 0:  g_t <- g_t + λ θ_{t-1}
        m_t <- β1 m_{t-1} + (1 - β1) g_t
        u_t <- max(β2 u_{t-1}, |g_t| + ε)
        θ_t <- θ_{t-1} - γ m_t / ((1 - β1^t) u_t)

  The chain is ``maximize -> coupled L2 decay -> scale_by_adamax -> -lr``. Weight decay is L2
  (optax's ``adamaxw`` is decoupled, which is not torch's Adamax).

  Args:
    lr: γ (torch's default 2e-3), a float or a schedule.
    betas: ``(β1, β2)``; β1 may be a schedule.
    eps: ε, inside the maximum.
    weight_decay: λ, L2.
    maximize: ascend instead of descend.

  Returns:
    ``optax.GradientTransformationExtraArgs`` whose state holds an :class:`AdamaxState`
    (``step, exp_avg, exp_inf``).

  Raises:
    ValueError: torch's ``Invalid learning rate``, ``Invalid epsilon value``, ``Invalid beta
      parameter at index i``, ``Invalid weight_decay value``.
      NaN fails every check (``Invalid learning rate: nan``).
    TypeError: a hyperparameter that is neither a number nor a schedule; at update time,
      integer gradients (a gradient tree unlike the params' raises ``ValueError``).

  Notes:
    Torch twin: ``torch.optim.Adamax`` (single-tensor path).
    Parity: float64 <= 1e-10, float32 <= 1e-5 at every one of 50 steps (case ``adamax``,
    5 configs; measured worst relative error: float32 1.0e-6, float64 2.5e-15).

  Examples:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> import losslab_jax as ll
    >>> tx = ll.optim.adamax(lr=0.1)
    >>> p = jnp.array([1.0, -2.0])
    >>> state = tx.init(p)
    >>> for g in (jnp.array([0.5, -3.0]), jnp.array([0.2, 1.0])):
    ...   u, state = tx.update(g, state, p)
    ...   p = optax.apply_updates(p, u)
    >>> print(np.round(np.asarray(p), 4))  # torch.optim.Adamax(lr=0.1), the same two gradients
    [ 0.8315 -1.8701]
  """
  _common.check_nonneg("learning rate", lr)
  _common.check_nonneg("epsilon value", eps)
  check_betas(betas)
  _common.check_nonneg("weight_decay value", weight_decay)
  return _common.torch_alias("adamax", scale_by_adamax(betas, eps),
                             lr=lr, maximize=maximize, weight_decay=weight_decay)


# --- torch twin (read by ll.interop.torch, parity and the docs; see _registry.TorchTwin) ---
from losslab_jax.optim import _registry  # noqa: E402

_registry.register_torch_twin(_registry.TorchTwin(
    torch_class="torch.optim.Adamax", factory=adamax, state_type=AdamaxState, torch_keeps_step=True,
    kwarg_map={k: k for k in ("betas", "eps", "weight_decay", "maximize")}, momentum_key="betas"))
