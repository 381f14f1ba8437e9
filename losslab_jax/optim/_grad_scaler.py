"""Dynamic loss scaling with ``torch.amp.GradScaler``'s semantics, around an optax transformation."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from losslab_jax.optim import _common


class GradScalerState(NamedTuple):
  """State of :func:`grad_scaler`.

  Attributes:
    scale: the current loss scale, float32 scalar (torch's ``_scale``); multiply the loss by it
      (:func:`loss_scale`) before differentiating.
    growth_tracker: consecutive updates without inf/NaN since the last growth or backoff, int32
      (torch's ``_growth_tracker``).
    found_inf: 1.0 if the last update found an inf/NaN gradient (and was skipped), else 0.0,
      float32 (torch's ``found_inf``); 0.0 before the first update.
    inner_state: the wrapped transformation's state.
  """

  scale: jax.Array
  growth_tracker: jax.Array
  found_inf: jax.Array
  inner_state: Any


def _schedule_state_types() -> tuple[type, ...]:
  """States whose counters are learning-rate schedules, which torch advances on a skipped step.

  torch's ``scheduler.step()`` runs every iteration, whether or not ``GradScaler.step`` ran the
  optimizer; the optimizer's own counters (Adam's ``step`` and its bias corrections) do not move.
  """
  from losslab_jax.optim._adafactor import _DecayState
  from losslab_jax.optim._plateau import ReduceLROnPlateauState

  return (_common.ScaleByLrState, _DecayState, ReduceLROnPlateauState, optax.ScaleByScheduleState,
          optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)


_INJECT_TYPES = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)


def _check(init_scale: Any, growth_factor: Any, backoff_factor: Any, growth_interval: Any) -> None:
  """torch's checks (``The growth factor must be > 1.0.``, ...), written so that NaN fails too."""
  if not growth_factor > 1.0:
    raise ValueError("The growth factor must be > 1.0.")
  if not backoff_factor < 1.0:
    raise ValueError("The backoff factor must be < 1.0.")
  if not backoff_factor > 0.0:
    raise ValueError(f"grad_scaler: expected backoff_factor > 0, got {backoff_factor}")
  if not (init_scale > 0.0 and math.isfinite(init_scale)):
    raise ValueError(f"grad_scaler: expected a finite init_scale > 0, got {init_scale}")
  if isinstance(growth_interval, bool) or not isinstance(growth_interval, int) or growth_interval < 1:
    raise ValueError(f"grad_scaler: expected growth_interval to be an int >= 1, got {growth_interval!r}")


def grad_scaler(tx: optax.GradientTransformation, init_scale: float = 2.0**16, growth_factor: float = 2.0,
                backoff_factor: float = 0.5, growth_interval: int = 2000) -> optax.GradientTransformationExtraArgs:
  r"""``torch.amp.GradScaler`` around ``tx``: unscale, skip on inf/NaN, grow or back off the scale.

  The user multiplies the loss by ``loss_scale(opt_state)`` before differentiating (torch's
  ``scaler.scale(loss).backward()``) and passes the *scaled* gradients to ``update``, which does
  torch's ``scaler.step(optimizer); scaler.update()``:

  .. math::
     \text{found\_inf} = \exists\, i:\ g_i \notin \mathbb{R},\qquad
     \hat g = g \cdot \mathrm{fl}_{32}(1 / s) \\
     \text{if found\_inf: } u = 0,\ \text{tx's state kept},\ s \leftarrow \beta s,\ n \leftarrow 0 \\
     \text{else: } u, \text{state} = \mathrm{tx}(\hat g),\ n \leftarrow n + 1;\
     \text{if } n = N:\ s \leftarrow \gamma s \text{ (if finite)},\ n \leftarrow 0

  with β = ``backoff_factor``, γ = ``growth_factor``, N = ``growth_interval``.

  **Schedules keep advancing on a skipped step**, as in a torch script that calls
  ``scheduler.step()`` every iteration: the wrapped transformation's update is computed, and on a
  skipped step its state is kept *except* for the states that count for learning-rate schedules,
  which take their updated value: ``ll.optim``'s ``ScaleByLrState`` (every alias's ``lr``) and
  Adafactor's decay counter, ``reduce_lr_on_plateau``'s state (it sees the metric, as torch's
  ``scheduler.step(metric)`` does), and optax's ``ScaleByScheduleState`` and
  ``inject_hyperparams`` states (their count and hyperparameters; the optimizer state they wrap
  follows the same rule). Everything else (moments, the optimizer's own ``step`` and bias
  corrections, ASGD's averages) stays as it was, as torch's optimizer state does when
  ``optimizer.step()`` is skipped. A coefficient schedule read from the optimizer's own step
  (``betas[0]``/``momentum`` schedules of ``ll.optim`` aliases, Adafactor's ``lr``) does not
  advance on a skipped step, unlike torch's momentum cycling: it lags by the number of skips.

  ``optax.apply_if_finite(tx, max_consecutive_errors)`` differs: it keeps the *whole* inner state
  on a non-finite step, so a learning-rate schedule freezes and every later step uses the
  learning rate of one step earlier per skip (measured in ``tests/optim/test_grad_scaler.py``);
  it also has no loss scale.

  Args:
    tx: the transformation to wrap (an ``ll.optim`` optimizer, a chain with clipping: it sees the
      unscaled gradients, as torch's ``scaler.unscale_(opt); clip_grad_norm_(...)`` does).
    init_scale: the first scale.
    growth_factor: γ > 1.
    backoff_factor: 0 < β < 1.
    growth_interval: N >= 1 consecutive finite steps before the scale grows.

  Returns:
    ``optax.GradientTransformationExtraArgs`` with state :class:`GradScalerState`; extra
    arguments (``value=``) reach ``tx``.

  Raises:
    ValueError: torch's ``The growth factor must be > 1.0.`` / ``The backoff factor must be <
      1.0.``; a non-positive ``backoff_factor`` or ``init_scale``, a ``growth_interval`` < 1.

  Notes:
    Torch twin: ``torch.amp.GradScaler(device, init_scale, growth_factor, backoff_factor,
    growth_interval)`` with ``scaler.step(opt); scaler.update()`` each iteration. The scale is
    float32 and ``1/scale`` is rounded to float32 as torch does; inf/NaN is looked for in the
    scaled gradients (before unscaling), as torch's ``_amp_foreach_non_finite_check_and_unscale_``.
    A growth that would overflow float32 leaves the scale unchanged (torch's kernel). torch
    refuses float16 gradients (``Attempting to unscale FP16 gradients.``); here any floating
    gradient is unscaled in its dtype (keep float32 master parameters for float16 training, as
    with torch).
    Parity: float64 <= 1e-10, float32 <= 1e-5 on parameters and scale (case ``grad_scaler``:
    float16 forward passes with torch's own and injected overflows).

  Examples:
    >>> import jax.numpy as jnp
    >>> import losslab_jax as ll
    >>> tx = ll.optim.grad_scaler(ll.optim.sgd(lr=0.1), init_scale=8.0, growth_interval=2)
    >>> p = jnp.array([1.0])
    >>> s = tx.init(p)
    >>> for g in ([4.0], [jnp.inf], [8.0], [8.0]):   # scaled gradients
    ...   u, s = tx.update(jnp.array(g), s, p)
    ...   print(round(float(u[0]), 6), float(ll.optim.loss_scale(s)))
    -0.05 8.0
    0.0 4.0
    -0.2 4.0
    -0.2 8.0
  """
  _check(init_scale, growth_factor, backoff_factor, growth_interval)
  tx = optax.with_extra_args_support(tx)
  sched_types = _schedule_state_types()

  def init_fn(params):
    return GradScalerState(scale=jnp.asarray(init_scale, jnp.float32),
                           growth_tracker=jnp.zeros([], jnp.int32),
                           found_inf=jnp.zeros([], jnp.float32),
                           inner_state=tx.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    sd = _common.scalar_dtype()
    scale = state.scale.astype(jnp.float32)
    inv_scale = (1.0 / scale.astype(sd)).astype(jnp.float32)       # torch: scale.double().reciprocal().float()
    leaves = jax.tree.leaves(updates)
    found = jnp.zeros([], bool)
    for g in leaves:
      found = found | ~jnp.all(jnp.isfinite(g))
    unscaled = jax.tree.map(lambda g: g * inv_scale.astype(g.dtype), updates)
    new_updates, new_inner = tx.update(unscaled, state.inner_state, params, **extra_args)
    new_updates = jax.tree.map(lambda u: jnp.where(found, jnp.zeros_like(u), u), new_updates)

    def keep(old, new):
      if isinstance(old, _INJECT_TYPES):                         # count and hyperparams advance,
        return new._replace(inner_state=merge(old.inner_state, new.inner_state))  # the optimizer's not
      if isinstance(old, sched_types):
        return new                                               # schedules advance regardless
      return jax.tree.map(lambda o, n: jnp.where(found, o, n), old, new)

    def merge(old, new):
      return jax.tree.map(keep, old, new, is_leaf=lambda x: isinstance(x, sched_types))

    inner = merge(state.inner_state, new_inner)
    # torch's _amp_update_scale_ (CPU kernel)
    successful = state.growth_tracker + 1
    grow = successful >= growth_interval
    grown = (scale.astype(sd) * growth_factor).astype(jnp.float32)
    grown = jnp.where(jnp.isfinite(grown), grown, scale)
    backed = (scale.astype(sd) * backoff_factor).astype(jnp.float32)
    new_scale = jnp.where(found, backed, jnp.where(grow, grown, scale))
    tracker = jnp.where(found | grow, jnp.zeros_like(successful), successful).astype(jnp.int32)
    return new_updates, GradScalerState(scale=new_scale, growth_tracker=tracker,
                                        found_inf=found.astype(jnp.float32), inner_state=inner)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def loss_scale(opt_state: Any) -> jax.Array:
  """The current loss scale held by the :func:`grad_scaler` inside ``opt_state``.

  Multiply the loss by it before differentiating (torch's ``scaler.scale(loss)``); torch's
  ``scaler.get_scale()``.

  Args:
    opt_state: a :class:`GradScalerState`, or any state containing exactly one (an
      ``optax.chain`` state, ``nnx.Optimizer.opt_state``).

  Returns:
    A float32 scalar.

  Raises:
    ValueError: no grad scaler state, or more than one, in ``opt_state``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import losslab_jax as ll
    >>> tx = ll.optim.grad_scaler(ll.optim.adam())
    >>> print(float(ll.optim.loss_scale(tx.init(jnp.zeros(2)))))
    65536.0
  """
  found = [x for x in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, GradScalerState))
           if isinstance(x, GradScalerState)]
  if len(found) != 1:
    raise ValueError(f"loss_scale: expected exactly one grad_scaler state in `opt_state`, got {len(found)};"
                     " wrap the optimizer with ll.optim.grad_scaler(...)")
  s: Any = found[0].scale
  if hasattr(s, "get_value"):   # an nnx.Variable (nnx.Optimizer.opt_state)
    s = s.get_value()
  return jnp.asarray(s, jnp.float32)
