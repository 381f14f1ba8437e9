"""The learning-rate range test (Smith 2017; fastai's ``lr_find``), as one jitted ``lax.scan``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from losslab_jax.analysis import _common
from losslab_jax.analysis._results import LRRangeResult

OptimizerFactory = Callable[[optax.ScalarOrSchedule], optax.GradientTransformation]


def lr_range_test(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    batches: Any = None,
    *,
    optimizer: OptimizerFactory | None = None,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    num_steps: int = 100,
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    skip_start: int = 10,
    skip_end: int = 5,
) -> LRRangeResult:
  r"""Train for ``num_steps`` steps with an exponentially growing learning rate; report the losses.

  The learning-rate range test: start from a tiny learning rate, multiply it by a constant
  factor every step, and watch the loss. It first barely moves, then falls, then blows up; a
  good learning rate sits where it falls fastest, well before the blow-up. The whole run is one
  jitted ``lax.scan``; the learning rate reaches the optimizer as a schedule.

  .. math::
     \eta_k = \eta_{\min} \Big(\frac{\eta_{\max}}{\eta_{\min}}\Big)^{k / (K - 1)}, \qquad
     a_k = \beta a_{k-1} + (1 - \beta) \ell_k, \quad a_{-1} = 0, \qquad
     \tilde\ell_k = \frac{a_k}{1 - \beta^{k + 1}},

  for steps :math:`k = 0, \dots, K - 1` (``K = num_steps``, :math:`\beta` = ``smoothing``),
  where :math:`\ell_k` is the loss before step :math:`k`. The test *diverges* at the first
  :math:`k` with :math:`\tilde\ell_k > \text{diverge\_factor} \cdot \min_{j \le k} \tilde\ell_j`
  or a non-finite loss; from then on the parameters are frozen and the recorded losses are NaN
  (fastai stops the loop there). The suggestion is the step of the most negative slope
  :math:`\partial \tilde\ell / \partial \log \eta` (central differences), searched over steps
  ``skip_start <= k < end - skip_end`` where ``end`` is the divergence step or ``K``.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar``, or ``loss_fn(params)`` when ``batches`` is
      ``None`` (full batch).
    params: the starting point, a pytree of floating arrays (not modified), or a ``flax.nnx``
      module (then ``loss_fn(model, batch)``): only its ``nnx.Param`` variables are trained;
      BatchNorm running statistics and other variables are held as they are (not updated).
    batches: ``None``, or a pytree of arrays with a leading batch axis of size ``B``; step ``k``
      uses batch ``k % B`` (so ``B = num_steps`` gives one fresh batch per step).
    optimizer: a factory ``lr -> optax.GradientTransformation`` that accepts a schedule for its
      learning rate, e.g. ``optax.adam``, ``ll.optim.adamw`` or
      ``lambda lr: ll.optim.sgd(lr, momentum=0.9)``. ``None``: plain SGD (``optax.sgd``, the
      same update as ``torch.optim.SGD`` without momentum). The schedule is read at the
      optimizer's 0-based step count, as optax and ``ll.optim`` do.
    min_lr: the first learning rate, ``> 0``.
    max_lr: the last learning rate, ``> min_lr``.
    num_steps: number of steps ``K``.
    smoothing: the moving-average factor :math:`\beta \in [0, 1)`; ``0`` disables smoothing.
      The average lags by about :math:`1 / (1 - \beta)` steps, which moves the suggestion
      toward larger learning rates; with few steps, a smaller value (0.9) follows the loss
      more closely.
    diverge_factor: stop once the smoothed loss exceeds this multiple of its best, ``> 1``.
      Assumes a positive loss, as fastai and torch-lr-finder do.
    skip_start: steps at the start never suggested (the loss has not reacted yet).
    skip_end: steps before the end (or the divergence) never suggested.

  Returns:
    An :class:`LRRangeResult`: ``lrs``, ``losses``, ``smoothed_losses``, ``suggested_lr``,
    ``suggested_index``, ``lr_at_min_loss``, ``min_loss_index``, ``diverged``, ``diverged_at``.
    Losses are in at least float32. ``suggested_lr`` is NaN (index ``-1``) when the smoothed
    loss falls at no eligible step.

  Raises:
    ValueError: a hyperparameter is out of range, ``num_steps`` leaves no eligible step after
      ``skip_start`` and ``skip_end``, or the leaves of ``batches`` disagree on the batch axis.
    TypeError: a leaf of ``params`` is not floating, or ``params`` holds nnx variables that are
      not ``nnx.Param`` (pass the module itself, or ``nnx.state(model, nnx.Param)``).

  Notes:
    Torch twin: none in torch; fastai's ``Learner.lr_find`` (same exponential sweep, bias-
    corrected smoothing with 0.98, stop at 4x the best smoothed loss, ``skip_start=10``,
    ``skip_end=5``) and torch-lr-finder's steepest-gradient suggestion. ``losses[k]`` is the loss
    *before* the update with ``lrs[k]``, as both record it.
    Parity: no torch twin; tests check the sweep, the smoothing and a closed-form quadratic
    trajectory against numpy, and the divergence point against the stability bound
    :math:`\eta < 2 / \lambda_{\max}`.

  Examples:
    >>> import jax.numpy as jnp
    >>> loss = lambda w: 0.5 * jnp.sum(w ** 2)  # SGD is stable for lr < 2
    >>> res = lr_range_test(loss, jnp.ones(3), min_lr=1e-3, max_lr=1e2, num_steps=60)
    >>> bool(res.diverged), float(res.lrs[res.diverged_at]) > 2.0
    (True, True)

  References:
    Smith, `Cyclical Learning Rates for Training Neural Networks
    <https://arxiv.org/abs/1506.01186>`_, 2017.
  """
  fn = "lr_range_test"
  loss_fn, params, extra = _common.module_params(fn, loss_fn, params)
  _common.check_floating_tree(fn, "params", params)
  _check_hyperparameters(fn, min_lr, max_lr, num_steps, smoothing, diverge_factor, skip_start, skip_end)
  num_batches = _num_batches(fn, batches)
  static = dict(loss_fn=loss_fn, optimizer=optimizer, num_steps=int(num_steps), num_batches=num_batches,
                skip_start=int(skip_start), skip_end=int(skip_end))
  hyper = (float(min_lr), float(max_lr), float(smoothing), float(diverge_factor))
  return _common.run(_lr_range, _lr_range_jit, static, params, batches, hyper, extra)


def _lr_range(params, batches, hyper, extra=(), *, loss_fn, optimizer, num_steps, num_batches, skip_start, skip_end):
  min_lr, max_lr, smoothing, diverge_factor = hyper
  dtype = _common.tree_float_dtype(params)
  ldtype = _common.stat_dtype(dtype)
  log_lo, log_hi = jnp.log(jnp.asarray(min_lr, dtype)), jnp.log(jnp.asarray(max_lr, dtype))

  def schedule(count):
    frac = jnp.asarray(count).astype(dtype) / (num_steps - 1)
    return jnp.exp(log_lo + frac * (log_hi - log_lo))

  tx = (optax.sgd if optimizer is None else optimizer)(schedule)
  beta = jnp.asarray(smoothing, ldtype)
  factor = jnp.asarray(diverge_factor, ldtype)

  def loss_at(p, k):
    if batches is None:
      return loss_fn(p, *extra)
    return loss_fn(p, jax.tree.map(lambda x: x[k % num_batches], batches), *extra)

  def step(carry, k):
    p, state, avg, best, stopped = carry
    loss, grads = jax.value_and_grad(loss_at)(p, k)
    loss = loss.astype(ldtype)
    avg = beta * avg + (1 - beta) * loss
    smooth = avg / (1 - beta ** (k + 1).astype(ldtype))
    best = jnp.minimum(best, smooth)
    diverging = ~jnp.isfinite(loss) | ~jnp.isfinite(smooth) | (smooth > factor * best)
    updates, new_state = tx.update(grads, state, p)
    halt = stopped | diverging
    keep = lambda old, new: jnp.where(halt, old, new)  # noqa: E731
    p = jax.tree.map(keep, p, optax.apply_updates(p, updates))
    state = jax.tree.map(keep, state, new_state)
    nan = jnp.asarray(jnp.nan, ldtype)
    out = (jnp.where(stopped, nan, loss), jnp.where(stopped, nan, smooth), diverging & ~stopped)
    return (p, state, avg, best, halt), out

  zero, inf = jnp.zeros((), ldtype), jnp.asarray(jnp.inf, ldtype)
  init = (params, tx.init(params), zero, inf, jnp.asarray(False))
  steps = jnp.arange(num_steps, dtype=jnp.int32)
  _, (losses, smoothed, flags) = jax.lax.scan(step, init, steps)
  lrs = schedule(steps)
  return _summarise(lrs, losses, smoothed, flags, skip_start, skip_end)


_lr_range_jit = jax.jit(
    _lr_range, static_argnames=("loss_fn", "optimizer", "num_steps", "num_batches", "skip_start", "skip_end"))


def _summarise(lrs, losses, smoothed, flags, skip_start, skip_end) -> LRRangeResult:
  n = lrs.shape[0]
  diverged = jnp.any(flags)
  diverged_at = jnp.where(diverged, jnp.argmax(flags), -1).astype(jnp.int32)
  end = jnp.where(diverged, diverged_at, n)
  log_lr = jnp.log(lrs).astype(smoothed.dtype)
  slope = (smoothed[2:] - smoothed[:-2]) / (log_lr[2:] - log_lr[:-2])  # at steps 1 .. n-2
  idx = jnp.arange(1, n - 1)
  eligible = (idx >= skip_start) & (idx < end - skip_end) & (idx <= end - 2) & (slope < 0)
  k = jnp.argmin(jnp.where(eligible, slope, jnp.inf))
  found = jnp.any(eligible)
  inside = jnp.arange(n) < end
  m = jnp.argmin(jnp.where(inside & jnp.isfinite(smoothed), smoothed, jnp.inf))
  return LRRangeResult(
      lrs=lrs,
      losses=losses,
      smoothed_losses=smoothed,
      suggested_lr=jnp.where(found, lrs[k + 1], jnp.nan).astype(lrs.dtype),
      suggested_index=jnp.where(found, k + 1, -1).astype(jnp.int32),
      lr_at_min_loss=lrs[m],
      min_loss_index=m.astype(jnp.int32),
      diverged=diverged,
      diverged_at=diverged_at,
  )


def _check_hyperparameters(fn, min_lr, max_lr, num_steps, smoothing, diverge_factor, skip_start, skip_end):
  def is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

  if not min_lr > 0 or not math.isfinite(min_lr):
    raise ValueError(f"{fn}: expected `min_lr` > 0, got {min_lr!r}")
  if not max_lr > min_lr or not math.isfinite(max_lr):
    raise ValueError(f"{fn}: expected `max_lr` > min_lr = {min_lr!r}, got {max_lr!r}")
  if not 0 <= smoothing < 1:
    raise ValueError(f"{fn}: expected `smoothing` in [0, 1), got {smoothing!r}")
  if not diverge_factor > 1:
    raise ValueError(f"{fn}: expected `diverge_factor` > 1, got {diverge_factor!r}")
  if not (is_int(skip_start) and skip_start >= 0 and is_int(skip_end) and skip_end >= 0):
    raise ValueError(
        f"{fn}: expected `skip_start` and `skip_end` ints >= 0, got {skip_start!r}, {skip_end!r}")
  first, stop = max(skip_start, 1), num_steps - max(skip_end, 1) if is_int(num_steps) else 0
  if not is_int(num_steps) or first >= stop:
    raise ValueError(
        f"{fn}: expected `num_steps` > max(skip_start, 1) + max(skip_end, 1) = {first + max(skip_end, 1)}"
        f" so that some step can be suggested, got {num_steps!r}")


def _num_batches(fn: str, batches: Any) -> int | None:
  if batches is None:
    return None
  leaves = jax.tree.leaves(batches)
  sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
  if not leaves or len(sizes) != 1 or None in sizes or 0 in sizes:
    shapes = [tuple(jnp.shape(x)) for x in leaves]
    raise ValueError(
        f"{fn}: expected `batches` whose leaves share a leading batch axis of size >= 1, got shapes {shapes}")
  size = sizes.pop()
  assert size is not None   # refused above
  return int(size)
