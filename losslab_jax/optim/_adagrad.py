"""Adagrad (``torch.optim.Adagrad``): eps outside the square root, ``lr_decay``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax.tree_utils import tree_cast_like

from losslab_jax.optim import _common
from losslab_jax.optim._common import ScalarOrSchedule



class AdagradState(NamedTuple):
  """State of :func:`scale_by_adagrad`, named as torch's per-parameter state keys.

  Attributes:
    step: number of updates so far, int32 scalar.
    sum: accumulated ``g²`` per leaf, in the param dtype, starting at ``initial_accumulator_value``.
  """

  step: jax.Array
  sum: optax.Updates


def _adagrad_leaf(g, s, *, eps):
  """One leaf of torch's ``_single_tensor_adagrad`` (dense, after weight decay): the direction."""
  cd = _common.leaf_compute_dtype(g.dtype)
  g = g.astype(cd)
  s = s.astype(cd) + g * g                                  # state_sum.addcmul_(grad, grad, value=1)
  std = jnp.sqrt(s) + jnp.asarray(eps, cd)                  # state_sum.sqrt().add_(eps)
  return g / std, s                                         # param.addcdiv_(grad, std, value=-clr)


def scale_by_adagrad(initial_accumulator_value: float = 0.0,
                     eps: float = 1e-10) -> optax.GradientTransformation:
  r"""Adagrad's direction (no learning rate, no sign), torch's arithmetic.

  .. math::
     s_t = s_{t-1} + g_t^2, \quad s_0 = \text{initial\_accumulator\_value}, \quad
     d_t = \frac{g_t}{\sqrt{s_t} + \epsilon}

  Unlike optax's ``scale_by_rss`` (``g / sqrt(s + eps)``, 0 where ``s = 0``), ε is outside the
  square root, so ``eps=0`` with a zero accumulator gives NaN as in torch.

  Args:
    initial_accumulator_value: s₀ (torch's default 0; optax's 0.1).
    eps: ε (torch's default 1e-10).

  Returns:
    An ``optax.GradientTransformation`` with state :class:`AdagradState`.

  Examples:
    >>> import jax.numpy as jnp, numpy as np
    >>> import losslab_jax as ll
    >>> tx = ll.optim.scale_by_adagrad()
    >>> g = jnp.array([0.5, -3.0])
    >>> d, state = tx.update(g, tx.init(g))
    >>> print(np.round(np.asarray(d), 4))  # step 1: g / (sqrt(g²) + eps) = sign(g)
    [ 1. -1.]
  """
  _common.check_nonneg("initial_accumulator_value value", initial_accumulator_value)
  _common.check_nonneg("epsilon value", eps)

  def init_fn(params):
    return AdagradState(step=jnp.zeros([], jnp.int32),
                        sum=jax.tree.map(
                            lambda p: jnp.full_like(p, jnp.asarray(initial_accumulator_value, p.dtype)),
                            params))

  def update_fn(updates, state, params=None):
    del params
    _common.check_updates("adagrad", updates, state.sum)
    d, s = _common.map_leaves(lambda g, s: _adagrad_leaf(g, s, eps=eps), 2, updates, state.sum)
    return tree_cast_like(d, updates), AdagradState(step=_common.increment(state.step),
                                                    sum=tree_cast_like(s, state.sum))

  return optax.GradientTransformation(init_fn, update_fn)


def _decayed_lr(lr: ScalarOrSchedule, lr_decay: Any) -> ScalarOrSchedule:
  """torch's ``clr = lr / (1 + (step - 1) * lr_decay)`` as a schedule of ``count = step - 1``."""
  if _common.is_static_zero(lr_decay):
    return lr

  def schedule(count):
    k = jnp.asarray(count).astype(_common.scalar_dtype())
    return _common.resolve(lr, count) / (1 + k * lr_decay)

  return schedule


def adagrad(lr: ScalarOrSchedule = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
            initial_accumulator_value: float = 0.0, eps: float = 1e-10,
            maximize: bool = False) -> optax.GradientTransformationExtraArgs:
  r"""``torch.optim.Adagrad`` as an optax transformation.

  torch's algorithm box (``torch.optim.Adagrad``)::

      input: γ (lr), θ0, f(θ), λ (weight decay), τ (initial accumulator value), η (lr decay), ε,
             maximize
      init:  state_sum_0 <- τ
      for t = 1, 2, ...:
        g_t <- ±∇f(θ_{t-1})
        γ̃ <- γ / (1 + (t - 1) η)
        if λ != 0:  g_t <- g_t + λ θ_{t-1}
        state_sum_t <- state_sum_{t-1} + g_t²
        θ_t <- θ_{t-1} - γ̃ g_t / (sqrt(state_sum_t) + ε)

  The chain is ``maximize -> coupled L2 decay -> scale_by_adagrad -> -γ̃``, where ``lr_decay``
  turns ``lr`` into the schedule ``k -> lr(k) / (1 + k η)``.

  Args:
    lr: γ, a float or a schedule.
    lr_decay: η.
    weight_decay: λ, L2.
    initial_accumulator_value: τ.
    eps: ε, outside the square root.
    maximize: ascend instead of descend.

  Returns:
    ``optax.GradientTransformationExtraArgs`` whose state holds an :class:`AdagradState`
    (``step, sum``).

  Raises:
    ValueError: torch's ``Invalid learning rate``, ``Invalid lr_decay value``, ``Invalid
      weight_decay value``, ``Invalid initial_accumulator_value value``, ``Invalid epsilon value``.
      NaN fails every check (``Invalid learning rate: nan``).
    TypeError: a hyperparameter that is neither a number nor a schedule; at update time,
      integer gradients (a gradient tree unlike the params' raises ``ValueError``).

  Notes:
    Torch twin: ``torch.optim.Adagrad`` (dense single-tensor path).
    Parity: float64 <= 1e-10, float32 <= 1e-5 at every one of 50 steps (case ``adagrad``,
    6 configs; measured worst relative error: float32 1.8e-6, float64 4.5e-15).

  Examples:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> import losslab_jax as ll
    >>> tx = ll.optim.adagrad(lr=0.1)
    >>> p = jnp.array([1.0, -2.0])
    >>> state = tx.init(p)
    >>> for g in (jnp.array([0.5, -3.0]), jnp.array([0.2, 1.0])):
    ...   u, state = tx.update(g, state, p)
    ...   p = optax.apply_updates(p, u)
    >>> print(np.round(np.asarray(p), 4))  # torch.optim.Adagrad(lr=0.1), the same two gradients
    [ 0.8629 -1.9316]
  """
  _common.check_nonneg("learning rate", lr)
  _common.check_nonneg("lr_decay value", lr_decay)
  _common.check_nonneg("weight_decay value", weight_decay)
  _common.check_nonneg("initial_accumulator_value value", initial_accumulator_value)
  _common.check_nonneg("epsilon value", eps)
  return _common.torch_alias("adagrad", scale_by_adagrad(initial_accumulator_value, eps),
                             lr=_decayed_lr(lr, lr_decay), maximize=maximize, weight_decay=weight_decay)


# --- torch twin (read by ll.interop.torch, parity and the docs; see _registry.TorchTwin) ---
from losslab_jax.optim import _registry  # noqa: E402

_registry.register_torch_twin(_registry.TorchTwin(
    torch_class="torch.optim.Adagrad", factory=adagrad, state_type=AdagradState, torch_keeps_step=True,
    kwarg_map={k: k for k in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize")},
    notes="torch creates the state at construction (sum = initial_accumulator_value, step 0)"))
