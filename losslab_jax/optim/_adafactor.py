"""Adafactor (``torch.optim.Adafactor``): factored second moments, relative step size."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax.tree_utils import tree_cast_like

from losslab_jax._internal import _checks
from losslab_jax.optim import _common

ScalarOrSchedule = optax.ScalarOrSchedule


class AdafactorState(NamedTuple):
  """State of :func:`scale_by_adafactor`, named as torch's per-parameter state keys.

  Attributes:
    step: number of updates so far, int32 scalar.
    row_var: for a leaf with ``ndim >= 2`` of shape ``(..., R, C)``, the row factor of shape
      ``(..., R, 1)`` (running mean of ``g**2`` over the last axis); a ``(0,)`` placeholder for
      0-/1-D leaves.
    col_var: the column factor ``(..., 1, C)`` (running mean over the second-to-last axis); a
      ``(0,)`` placeholder for 0-/1-D leaves.
    variance: for a 0-/1-D leaf the unfactored running mean of ``g**2`` (the leaf's shape); a
      ``(0,)`` placeholder for leaves with ``ndim >= 2``.
  """

  step: jax.Array
  row_var: optax.Updates
  col_var: optax.Updates
  variance: optax.Updates


def _checkable(value: Any) -> bool:
  """A value fixed now (schedules and traced values are not checked)."""
  return not callable(value) and _checks.is_concrete(value)


def _check_adafactor(lr: Any, beta2_decay: Any, eps: Any, d: Any, weight_decay: Any) -> None:
  """torch's argument checks and wording; written ``not 0 <= x`` so that NaN is rejected too."""
  if not isinstance(eps, (tuple, list)) or len(eps) != 2:
    raise ValueError(f"eps: expected a pair (eps1 or None, eps2), got {eps!r}")
  if _checkable(lr) and not 0.0 <= lr:
    raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
  if not 0.0 >= beta2_decay:
    raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
  if eps[0] is not None and not 0.0 <= eps[0]:
    raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
  if not 0.0 <= eps[1]:
    raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
  if not 1.0 <= d:
    raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
  if not 0.0 <= weight_decay:
    raise ValueError(f"weight_decay should be >= 0 but is: {weight_decay}")


def _placeholder(p: jax.Array) -> jax.Array:
  return jnp.zeros((0,), p.dtype)


def _init_leaf(p: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  if p.ndim >= 2:
    row = jnp.zeros(p.shape[:-1] + (1,), p.dtype)
    col = jnp.zeros(p.shape[:-2] + (1, p.shape[-1]), p.dtype)
    return row, col, _placeholder(p)
  return _placeholder(p), _placeholder(p), jnp.zeros_like(p)


def _norm(x: jax.Array, axis=None, keepdims: bool = False) -> jax.Array:
  """``torch.linalg.vector_norm(x, 2)`` (over ``axis``): ``sqrt(sum(x * x))``."""
  return jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=keepdims))


def _adafactor_leaf(g, p, row, col, var, *, w, rho, eps1, eps2, d, sd):
  """One leaf of torch's ``_single_tensor_adafactor`` (before weight decay): ``alpha / denom * U``.

  ``w = t ** beta2_decay`` and ``rho = min(lr, 1 / sqrt(t))`` are scalars in ``sd`` (torch's Python
  doubles: float64 under x64, else float32); the tensor math runs in the leaf's compute dtype.
  """
  cd = _common.leaf_compute_dtype(g.dtype)
  e1 = float(jnp.finfo(p.dtype).eps) if eps1 is None else eps1  # torch: finfo(param.dtype).eps
  g = g.astype(cd)
  n = max(p.size, 1)
  # alpha = max(eps2, ||p|| / sqrt(numel)) * rho, with the norm in p's dtype and the rest in doubles
  rms_p = _norm(p.astype(cd)).astype(sd) / jnp.asarray(math.sqrt(n), sd)
  alpha = jnp.maximum(jnp.asarray(eps2, sd), rms_p) * rho
  if g.ndim >= 2:
    row_mean = jnp.square(_norm(g, axis=-1, keepdims=True)) / jnp.asarray(g.shape[-1], cd)
    col_mean = jnp.square(_norm(g, axis=-2, keepdims=True)) / jnp.asarray(g.shape[-2], cd)
    row = _common.lerp(row.astype(cd), row_mean, w)
    col = _common.lerp(col.astype(cd), col_mean, w)
    var_estimate = row * col                                   # row_var @ col_var (an outer product)
    var_estimate = var_estimate / jnp.maximum(jnp.mean(row, axis=-2, keepdims=True), jnp.asarray(e1, cd))
  else:
    var = _common.lerp(var.astype(cd), g * g, w)
    var_estimate = var
  update = jax.lax.rsqrt(jnp.maximum(var_estimate, jnp.asarray(e1 * e1, cd))) * g
  rms_u = _norm(update).astype(sd) / jnp.asarray(math.sqrt(n) * d, sd)
  denom = jnp.maximum(jnp.ones([], sd), rms_u)
  coef = (alpha / denom).astype(cd)                            # torch's add_(update, alpha=-alpha/denom)
  return update * coef, row, col, var


def scale_by_adafactor(lr: ScalarOrSchedule = 1e-2, beta2_decay: float = -0.8,
                       eps: tuple[float | None, float] = (None, 1e-3),
                       d: float = 1.0) -> optax.GradientTransformation:
  r"""Adafactor's step (its magnitude included, no sign, no weight decay), torch's arithmetic.

  Adafactor's step size is relative to the parameter's RMS and enters non-linearly
  (``rho_t = min(lr, 1/sqrt(t))``), so unlike the other ``scale_by_*`` this one takes ``lr``
  and returns ``alpha_t * U_hat_t`` (see :func:`adafactor`); it needs ``update(g, s, params)``.

  .. math::
     \hat\beta_{2,t} = 1 - t^{\tau},\quad \rho_t = \min(\gamma, 1/\sqrt t),\quad
     \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\,\rho_t,\quad
     \hat U_t = \frac{U_t}{\max(1, \mathrm{RMS}(U_t)/d)}

  Args:
    lr: γ, a float or a schedule ``count -> lr`` (read at this transformation's own step).
    beta2_decay: τ <= 0.
    eps: ``(eps1, eps2)``; ``eps1=None`` means ``finfo(param dtype).eps``, as in torch.
    d: update clipping threshold, >= 1.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`AdafactorState`.
  """
  _check_adafactor(lr, beta2_decay, eps, d, 0.0)
  eps1, eps2 = eps

  def init_fn(params):
    row, col, var = _common.map_leaves(_init_leaf, 3, params)
    return AdafactorState(step=jnp.zeros([], jnp.int32), row_var=row, col_var=col, variance=var)

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("adafactor: the step size is relative to the parameters' RMS; call"
                       " `update(grads, state, params)` (optax.apply_updates style), not `update(grads, state)`")
    sd = _common.scalar_dtype()
    step = jnp.asarray(optax.safe_increment(state.step))        # torch: step_t += 1 before use
    t = step.astype(sd)
    w = jnp.power(t, jnp.asarray(beta2_decay, sd))              # one_minus_beta2_t = t ** beta2_decay
    lr_k = _common.resolve(lr, state.step).astype(sd)
    rho = jnp.minimum(lr_k, 1.0 / jnp.sqrt(t))
    leaf = lambda g, p, r, c, v: _adafactor_leaf(g, p, r, c, v, w=w, rho=rho, eps1=eps1,  # noqa: E731
                                                 eps2=eps2, d=d, sd=sd)
    u, row, col, var = _common.map_leaves(leaf, 4, updates, params, state.row_var, state.col_var,
                                          state.variance)
    cast = tree_cast_like
    return cast(u, updates), AdafactorState(step=step, row_var=cast(row, state.row_var),
                                            col_var=cast(col, state.col_var),
                                            variance=cast(var, state.variance))

  return optax.GradientTransformation(init_fn, update_fn)


class _DecayState(NamedTuple):
  step: jax.Array


def _negate_and_decay(lr: ScalarOrSchedule, weight_decay: float) -> optax.GradientTransformation:
  """``u <- -u + (f - 1) p`` with ``f = 1 - lr_k * wd`` (torch's ``param.mul_(1 - lr * wd)``)."""
  if _common.is_static_zero(weight_decay):
    return optax.scale(-1.0)

  def init_fn(params):
    del params
    return _DecayState(step=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(_common.NO_PARAMS_MSG.format(fn="adafactor"))
    lr_k = _common.resolve(lr, state.step)

    def decayed(u, p):
      factor = (1 - lr_k * weight_decay).astype(_common.leaf_compute_dtype(p.dtype))
      dt = jnp.result_type(factor, p)
      return (-u.astype(dt) + (factor.astype(dt) - 1) * p.astype(dt)).astype(u.dtype)

    return jax.tree.map(decayed, updates, params), _DecayState(step=jnp.asarray(optax.safe_increment(state.step)))

  return optax.GradientTransformation(init_fn, update_fn)


def adafactor(lr: ScalarOrSchedule = 1e-2, beta2_decay: float = -0.8,
              eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0,
              weight_decay: float = 0.0, maximize: bool = False) -> optax.GradientTransformationExtraArgs:
  r"""``torch.optim.Adafactor`` as an optax transformation.

  torch's algorithm box (``torch.optim.Adafactor``)::

      input: lr γ, β2 decay τ, θ0, f(θ), ε1, ε2, clipping threshold d, weight decay λ, maximize
      init:  R0 <- 0 (row factor), C0 <- 0 (column factor), V0 <- 0 (for vectors)
      for t = 1, 2, ...:
        G_t <- -∇f(θ_{t-1}) if maximize else ∇f(θ_{t-1})
        β̂2_t <- 1 - t^τ
        ρ_t <- min(γ, 1/sqrt(t))
        α_t <- max(ε2, RMS(θ_{t-1})) ρ_t
        θ_t <- θ_{t-1} - γ λ θ_{t-1}
        if dim(G_t) > 1:                           # factored on the last two axes
          R_t <- β̂2_t R_{t-1} + (1 - β̂2_t) mean_{last axis}(G_t ⊙ G_t)
          C_t <- β̂2_t C_{t-1} + (1 - β̂2_t) mean_{second-to-last axis}(G_t ⊙ G_t)
          V̂_t <- (R_t C_t) / max(mean(R_t), ε1)
        else:
          V̂_t <- β̂2_t V̂_{t-1} + (1 - β̂2_t) G_t ⊙ G_t
        U_t <- G_t / max(sqrt(V̂_t), ε1)
        Û_t <- U_t / max(1, RMS(U_t) / d)
        θ_t <- θ_t - α_t Û_t

  The chain is ``maximize -> scale_by_adafactor -> (-1, plus -γλθ)``. ``lr`` caps the relative
  step size ρ_t (it is not a multiplier of the step) and scales the decoupled weight decay.

  Args:
    lr: γ, a float or a schedule ``count -> lr``.
    beta2_decay: τ (<= 0), the decay rate of β2.
    eps: ``(ε1, ε2)``. ``ε1=None`` is ``finfo(param dtype).eps`` (torch's rule); ε2 is the floor
      of the parameter RMS in α_t.
    d: clipping threshold (>= 1).
    weight_decay: λ, decoupled: ``θ <- θ (1 - γλ)``.
    maximize: ascend instead of descend.

  Returns:
    ``optax.GradientTransformationExtraArgs``; the :class:`AdafactorState` inside holds ``step,
    row_var, col_var, variance``. Needs ``update(grads, state, params)``.

  Raises:
    ValueError: torch's ``Learning rate should be >= 0 but is: ...``, ``beta2_decay should be <= 0
      ...``, ``epsilon1 ...``, ``epsilon2 ...``, ``Clipping threshold d should be >= 1 ...``,
      ``weight_decay should be >= 0 ...`` (NaN is rejected as torch rejects it).

  Notes:
    Torch twin: ``torch.optim.Adafactor`` (single-tensor path, its default). Scalars
    (``t ** τ``, ρ_t, α_t, the clipping denominator) are computed as torch's Python doubles
    (float64 under x64, else float32); the row/column means are ``vector_norm(...) ** 2 / n``
    as torch computes them. bf16/f16 leaves are computed in float32 and stored in their dtype
    (torch computes in the leaf dtype), with ε1 from the leaf's own dtype. Differences: with
    ``eps[0] = None`` torch takes ε1 from the *first* parameter's dtype for all of them; here
    each leaf uses its own dtype (the same when all parameters share a dtype). A ``lr``
    schedule is read at Adafactor's own step count.
    Parity: float64 <= 1e-10, float32 <= 1e-5 at every one of 50 steps (case ``adafactor``).

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> import losslab_jax as ll
    >>> p = jnp.array([3.0, 4.0])
    >>> tx = ll.optim.adafactor(lr=0.01)
    >>> u, _ = tx.update(jnp.array([1.0, -2.0]), tx.init(p), p)
    >>> print(optax.apply_updates(p, u))  # p - lr * RMS(p) * sign(g) at step 1
    [2.9646447 4.0353556]
  """
  _check_adafactor(lr, beta2_decay, eps, d, weight_decay)
  return _common.chain(
      _common.maximize(maximize),
      scale_by_adafactor(lr, beta2_decay, eps, d),
      _negate_and_decay(lr, weight_decay))


# --- torch twin (read by ll.interop.torch, parity and the docs; see _registry.TorchTwin) ---
from losslab_jax.optim import _registry  # noqa: E402

_registry.register_torch_twin(_registry.TorchTwin(
    torch_class="torch.optim.Adafactor", factory=adafactor, state_type=AdafactorState, torch_keeps_step=True,
    kwarg_map={k: k for k in ("beta2_decay", "eps", "d", "weight_decay", "maximize")},
    notes="torch keeps row_var/col_var only for >= 2-D params and variance only for 0-/1-D ones;"
          " the other field holds a (0,) placeholder here"))
