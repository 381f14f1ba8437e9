"""NAdam (``torch.optim.NAdam``) with torch's momentum-decay schedule ``μ_t`` and ``mu_product``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax.tree_utils import tree_cast_like

from losslab_jax.optim import _common
from losslab_jax.optim._common import ScalarOrSchedule
from losslab_jax.optim._adam import check_betas



class NAdamState(NamedTuple):
  """State of :func:`scale_by_nadam`, named as torch's per-parameter state keys.

  Attributes:
    step: number of updates so far, int32 scalar.
    mu_product: ``Π_{i<=t} μ_i``, a scalar. Stored in float32 by default because torch keeps it in
      its default dtype (float32 unless ``torch.set_default_dtype(torch.float64)``), even for
      float64 parameters; float64 parity needs the same rounding.
    exp_avg: first moment ``m`` per leaf, in the param dtype.
    exp_avg_sq: second moment ``v`` per leaf.
  """

  step: jax.Array
  mu_product: jax.Array
  exp_avg: optax.Updates
  exp_avg_sq: optax.Updates


def _nadam_leaf(g, m, v, *, beta1, beta2, eps, bc2, c_grad, c_avg):
  """One leaf of torch's ``_single_tensor_nadam`` (after weight decay), returning the direction.

  torch's two ``addcdiv_`` calls, ``-lr * c_grad * g / denom`` and ``-lr * c_avg * m / denom``,
  become ``lr * direction`` with ``direction = c_grad * g / denom + c_avg * m / denom``.
  """
  cd = _common.leaf_compute_dtype(g.dtype)
  c = lambda x: jnp.asarray(x, cd)  # noqa: E731
  g = g.astype(cd)
  m = _common.lerp(m.astype(cd), g, _common.one_minus(beta1))            # exp_avg.lerp_(grad, 1 - beta1)
  v = v.astype(cd) * c(beta2) + c(_common.one_minus(beta2)) * (g * g)
  denom = jnp.sqrt(v / c(bc2)) + c(eps)                                 # exp_avg_sq.div(bc2).sqrt() + eps
  return c(c_grad) * (g / denom) + c(c_avg) * (m / denom), m, v


def _mu(beta1: Any, t: jax.Array, momentum_decay: Any) -> jax.Array:
  """``μ_t = β1 (1 - 0.5 · 0.96^(t ψ))``."""
  return beta1 * (1.0 - 0.5 * jnp.power(jnp.asarray(0.96, t.dtype), t * momentum_decay))


def scale_by_nadam(betas: tuple[ScalarOrSchedule, float] = (0.9, 0.999), eps: float = 1e-8,
                   momentum_decay: float = 4e-3,
                   mu_product_dtype: Any = jnp.float32) -> optax.GradientTransformation:
  r"""NAdam's direction (no learning rate, no sign), torch's arithmetic.

  .. math::
     \mu_t = \beta_1 (1 - \tfrac12 0.96^{t\psi}), \quad \Pi_t = \Pi_{t-1}\mu_t, \quad
     d_t = \frac{1-\mu_t}{1-\Pi_t}\frac{g_t}{\sqrt{\hat v_t}+\epsilon}
         + \frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\frac{m_t}{\sqrt{\hat v_t}+\epsilon},
     \quad \hat v_t = v_t / (1-\beta_2^t)

  Args:
    betas: ``(β1, β2)``; β1 may be a schedule ``count -> β1`` (both μ_t and μ_{t+1} then use the
      current β1, as torch does with a cycled ``betas``).
    eps: ε, outside the square root of the bias-corrected ``v``.
    momentum_decay: ψ.
    mu_product_dtype: dtype of the stored ``mu_product`` (torch's default dtype; float32).

  Returns:
    An ``optax.GradientTransformation`` with state :class:`NAdamState`.

  Examples:
    >>> import jax.numpy as jnp, numpy as np
    >>> import losslab_jax as ll
    >>> tx = ll.optim.scale_by_nadam()
    >>> g = jnp.array([0.5, -3.0])
    >>> d, state = tx.update(g, tx.init(g))
    >>> print(np.round(np.asarray(d), 4))  # torch.optim.NAdam(lr=1) moves the params by these
    [ 1.0565 -1.0565]
  """
  check_betas(betas)
  _common.check_nonneg("epsilon value", eps)
  _common.check_nonneg("momentum_decay value", momentum_decay)
  beta1, beta2 = betas

  def init_fn(params):
    return NAdamState(step=jnp.zeros([], jnp.int32), mu_product=jnp.ones([], mu_product_dtype),
                      exp_avg=_common.tree_zeros_like(params),
                      exp_avg_sq=_common.tree_zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    _common.check_updates("nadam", updates, state.exp_avg)
    step = _common.increment(state.step)
    sd = _common.scalar_dtype()
    t = step.astype(sd)
    b1 = beta1 if _common.is_static(beta1) else _common.resolve(beta1, state.step)
    bc2 = _common.bias_correction(beta2, t)
    mu = _mu(b1, t, momentum_decay)
    mu_next = _mu(b1, t + 1, momentum_decay)
    mu_product = state.mu_product * mu.astype(state.mu_product.dtype)   # mu_product *= mu (stored dtype)
    mp = mu_product.astype(sd)                                          # _get_value(mu_product)
    c_grad = (1.0 - mu) / (1.0 - mp)
    c_avg = mu_next / (1.0 - mp * mu_next)
    leaf = lambda g, m, v: _nadam_leaf(g, m, v, beta1=b1, beta2=beta2, eps=eps, bc2=bc2,  # noqa: E731
                                       c_grad=c_grad, c_avg=c_avg)
    d, m, v = _common.map_leaves(leaf, 3, updates, state.exp_avg, state.exp_avg_sq)
    return tree_cast_like(d, updates), NAdamState(step=step, mu_product=mu_product,
                                        exp_avg=tree_cast_like(m, state.exp_avg),
                                        exp_avg_sq=tree_cast_like(v, state.exp_avg_sq))

  return optax.GradientTransformation(init_fn, update_fn)


def nadam(lr: ScalarOrSchedule = 2e-3, betas: tuple[ScalarOrSchedule, float] = (0.9, 0.999),
          eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
          decoupled_weight_decay: bool = False,
          maximize: bool = False) -> optax.GradientTransformationExtraArgs:
  r"""``torch.optim.NAdam`` as an optax transformation.

  torch's algorithm box (``torch.optim.NAdam``)::

      input: γ_t (lr), β1, β2, θ0, f(θ), λ (weight decay), ψ (momentum decay), ε,
             decoupled_weight_decay, maximize
      init:  m0 <- 0, v0 <- 0, Π_0 <- 1 (mu_product)
      for t = 1, 2, ...:
        g_t <- ±∇f(θ_{t-1})
        if λ != 0:  decoupled ? θ_{t-1} <- θ_{t-1} (1 - γλ)  :  g_t <- g_t + λ θ_{t-1}
        μ_t <- β1 (1 - ½ 0.96^(t ψ));   μ_{t+1} <- β1 (1 - ½ 0.96^((t+1) ψ));   Π_t <- Π_{t-1} μ_t
        m_t <- β1 m_{t-1} + (1 - β1) g_t;   v_t <- β2 v_{t-1} + (1 - β2) g_t²
        denom <- sqrt(v_t / (1 - β2^t)) + ε
        θ_t <- θ_{t-1} - γ (1 - μ_t)/(1 - Π_t) · g_t/denom - γ μ_{t+1}/(1 - Π_t μ_{t+1}) · m_t/denom

  The chain is ``maximize -> coupled L2 decay -> scale_by_nadam -> -lr`` (``-lr (u + wd p)`` when
  ``decoupled_weight_decay``, NAdamW). optax's ``nadam`` uses a constant μ = β1, which is not this.

  Args:
    lr: γ (torch's default 2e-3), a float or a schedule.
    betas: ``(β1, β2)``; β1 may be a schedule.
    eps: ε.
    weight_decay: λ, L2 unless ``decoupled_weight_decay``.
    momentum_decay: ψ.
    decoupled_weight_decay: apply λ as ``θ <- θ (1 - γλ)`` (NAdamW).
    maximize: ascend instead of descend.

  Returns:
    ``optax.GradientTransformationExtraArgs`` whose state holds a :class:`NAdamState`
    (``step, mu_product, exp_avg, exp_avg_sq``).

  Raises:
    ValueError: torch's ``Invalid learning rate``, ``Invalid epsilon value``, ``Invalid beta
      parameter at index i``, ``Invalid weight_decay value``, ``Invalid momentum_decay value``.
      NaN fails every check (``Invalid learning rate: nan``).
    TypeError: a hyperparameter that is neither a number nor a schedule; at update time,
      integer gradients (a gradient tree unlike the params' raises ``ValueError``).

  Notes:
    Torch twin: ``torch.optim.NAdam`` (single-tensor path). ``mu_product`` is float32 like torch's
    (its default dtype), so float64 runs match torch with its default dtype float32.
    Parity: float64 <= 1e-10, float32 <= 1e-5 at every one of 50 steps (case ``nadam``,
    7 configs; measured worst relative error: float32 3.4e-6, float64 4.7e-14).

  Examples:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> import losslab_jax as ll
    >>> tx = ll.optim.nadam(lr=0.1)
    >>> p = jnp.array([1.0, -2.0])
    >>> state = tx.init(p)
    >>> for g in (jnp.array([0.5, -3.0]), jnp.array([0.2, 1.0])):
    ...   u, state = tx.update(g, state, p)
    ...   p = optax.apply_updates(p, u)
    >>> print(np.round(np.asarray(p), 4))  # torch.optim.NAdam(lr=0.1), the same two gradients
    [ 0.8497 -1.9214]
  """
  _common.check_nonneg("learning rate", lr)
  _common.check_nonneg("epsilon value", eps)
  check_betas(betas)
  _common.check_nonneg("weight_decay value", weight_decay)
  _common.check_nonneg("momentum_decay value", momentum_decay)
  wd_coupled = 0.0 if decoupled_weight_decay else weight_decay
  wd_decoupled = weight_decay if decoupled_weight_decay else 0.0
  return _common.torch_alias("nadam", scale_by_nadam(betas, eps, momentum_decay),
                             lr=lr, maximize=maximize, weight_decay=wd_coupled,
                             decoupled_weight_decay=wd_decoupled)


# --- torch twin (read by ll.interop.torch, parity and the docs; see _registry.TorchTwin) ---
from losslab_jax.optim import _registry  # noqa: E402

_registry.register_torch_twin(_registry.TorchTwin(
    torch_class="torch.optim.NAdam", factory=nadam, state_type=NAdamState, torch_keeps_step=True,
    kwarg_map={k: k for k in ("betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay",
                              "maximize")},
    momentum_key="betas", scalar_fields=("mu_product",)))
