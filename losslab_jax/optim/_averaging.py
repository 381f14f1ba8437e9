"""Averaged parameters (``torch.optim.swa_utils.AveragedModel``: SWA and EMA) and ``update_bn``."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

MultiAvgFn = Callable[[Any, Any, jax.Array], Any]
"""``fn(averaged, current, n_averaged) -> new averaged`` over pytrees (torch's ``multi_avg_fn``,
functional instead of in place); ``n_averaged`` >= 1 is the number of models averaged so far."""


class AveragedParamsState(NamedTuple):
  """State of :func:`averaged_params`.

  Attributes:
    averaged: the averaged pytree (torch's ``AveragedModel.module`` parameters).
    n_averaged: how many times ``update`` has run, int32 scalar (torch's ``n_averaged`` buffer).
  """

  averaged: Any
  n_averaged: jax.Array


class AveragedParams(NamedTuple):
  """What :func:`averaged_params` returns: ``init(params)`` and ``update(state, params)``."""

  init: Callable[[Any], AveragedParamsState]
  update: Callable[[AveragedParamsState, Any], AveragedParamsState]


def _lerp(start: jax.Array, end: jax.Array, w: Any) -> jax.Array:
  """torch's ``lerp`` with a scalar weight: ``start + w (end - start)`` for ``|w| < 0.5``, else
  ``end - (end - start)(1 - w)``."""
  w = jnp.asarray(w, start.dtype)
  return jnp.where(jnp.abs(w) < 0.5, start + w * (end - start), end - (end - start) * (1 - w))


def _is_float(x: jax.Array) -> bool:
  return jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)


def ema_multi_avg_fn(decay: float = 0.999) -> MultiAvgFn:
  r"""torch's ``get_ema_multi_avg_fn(decay)``: an exponential moving average.

  .. math::
     W^{EMA}_{t+1} = \mathrm{decay}\, W^{EMA}_t + (1 - \mathrm{decay})\, W^{model}_{t+1}

  computed as torch's ``lerp(W_ema, W_model, 1 - decay)`` for floating leaves (and as
  ``W_ema * decay + W_model * (1 - decay)`` cast back for integer leaves).

  Args:
    decay: in ``[0, 1]``.

  Returns:
    A :data:`MultiAvgFn` for :func:`averaged_params`.

  Raises:
    ValueError: torch's ``Invalid decay value ... provided. Please provide a value in [0,1] range.``
      (NaN included).

  Examples:
    >>> import jax.numpy as jnp
    >>> import losslab_jax as ll
    >>> avg = ll.optim.averaged_params(ll.optim.ema_multi_avg_fn(0.9))
    >>> s = avg.init(jnp.zeros(1))
    >>> for w in (1.0, 2.0, 2.0):
    ...   s = avg.update(s, jnp.array([w]))
    >>> print(round(float(s.averaged[0]), 6), int(s.n_averaged))  # 1, then 1 + 0.1, then 1.1 + 0.09
    1.19 3
  """
  if not 0.0 <= decay <= 1.0:
    raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")

  def fn(averaged, current, n_averaged):
    del n_averaged

    def leaf(a, c):
      if _is_float(a):
        return _lerp(a, c.astype(a.dtype), 1.0 - decay)
      return (a * decay + c * (1 - decay)).astype(a.dtype)

    return jax.tree.map(leaf, averaged, current)

  return fn


def swa_multi_avg_fn() -> MultiAvgFn:
  r"""torch's ``get_swa_multi_avg_fn()``: the running equal-weight mean.

  .. math::
     W^{SWA}_{n+1} = W^{SWA}_n + \frac{W^{model} - W^{SWA}_n}{n + 1}

  computed as torch's ``lerp(W_swa, W_model, 1 / (n + 1))``, whose weight torch rounds to
  float32 (``1 / (n_averaged + 1)`` of a long tensor) whatever the parameter dtype.

  Returns:
    A :data:`MultiAvgFn` for :func:`averaged_params`.

  Examples:
    >>> import jax.numpy as jnp
    >>> import losslab_jax as ll
    >>> avg = ll.optim.averaged_params(ll.optim.swa_multi_avg_fn())
    >>> s = avg.init(jnp.zeros(1))
    >>> for w in (1.0, 2.0, 6.0):
    ...   s = avg.update(s, jnp.array([w]))
    >>> print(float(s.averaged[0]))
    3.0
  """

  def fn(averaged, current, n_averaged):
    w = 1.0 / (jnp.asarray(n_averaged, jnp.float32) + 1.0)   # float32, as torch's 1 / (long + 1)

    def leaf(a, c):
      if _is_float(a):
        return _lerp(a, c.astype(a.dtype), w)
      return (a + (c - a) // (n_averaged + 1)).astype(a.dtype)  # torch's integer addcdiv path

    return jax.tree.map(leaf, averaged, current)

  return fn


def _default_avg(averaged, current, n_averaged):
  """torch's CPU default (``get_swa_avg_fn``): ``a + (c - a) / (n + 1)`` in the leaf's dtype."""
  def leaf(a, c):
    if _is_float(a):
      return a + (c.astype(a.dtype) - a) / (n_averaged + 1).astype(a.dtype)
    return (a + (c - a) / (n_averaged + 1)).astype(a.dtype)

  return jax.tree.map(leaf, averaged, current)


def averaged_params(multi_avg_fn: MultiAvgFn | None = None) -> AveragedParams:
  r"""torch's ``AveragedModel`` over a params pytree: SWA (the default) or EMA.

  ``init(params)`` makes the state (``n_averaged = 0``); ``update(state, params)`` is torch's
  ``update_parameters(model)``: the first call copies ``params``, every later call applies
  ``multi_avg_fn(averaged, params, n_averaged)``; ``n_averaged`` counts the calls. The averaged
  pytree is ``state.averaged``.

  .. math::
     W_1 = W^{model}_1, \qquad W_{n+1} = f(W_n, W^{model}_{n+1}, n)

  Buffers (torch's ``use_buffers``) with nnx. torch's ``AveragedModel(model)`` averages the
  parameters and *copies* the buffers (BatchNorm statistics) from the model at each update;
  ``use_buffers=True`` averages them too. With nnx, average what you pass:

  * ``use_buffers=False``: average ``nnx.state(model, nnx.Param)`` and evaluate with the model's
    own batch statistics: ``nnx.update(eval_model, state.averaged)`` on a copy of the model
    (``nnx.clone``) whose ``nnx.BatchStat`` variables are the model's; or recompute them for the
    averaged weights with :func:`update_bn`.
  * ``use_buffers=True``: average ``nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))`` (parameters and
    running statistics together) and ``nnx.update(eval_model, state.averaged)``.

  Args:
    multi_avg_fn: ``fn(averaged, current, n_averaged) -> averaged``, e.g.
      :func:`ema_multi_avg_fn` or :func:`swa_multi_avg_fn`. ``None`` is torch's CPU default, the
      equal-weight mean computed as ``a + (c - a) / (n + 1)`` in each leaf's dtype (torch on a
      device with foreach kernels uses :func:`swa_multi_avg_fn`'s lerp instead: the same mean up
      to rounding).

  Returns:
    :class:`AveragedParams` ``(init, update)``; both are pure and jit-safe (the copy at the first
    update is a ``where`` on ``n_averaged == 0``).

  Notes:
    Torch twin: ``torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=...)`` and its
    ``update_parameters``. NaN in the parameters propagates into the average (as in torch).
    Parity: float64 <= 1e-10, float32 <= 1e-5 along a training trajectory (case
    ``averaged_params``: SWA default, ``get_swa_multi_avg_fn``, ``get_ema_multi_avg_fn``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import losslab_jax as ll
    >>> swa = ll.optim.averaged_params()
    >>> s = swa.init({"w": jnp.zeros(2)})
    >>> for w in ([1.0, 0.0], [3.0, 2.0]):
    ...   s = swa.update(s, {"w": jnp.array(w)})
    >>> print(s.averaged["w"], int(s.n_averaged))
    [2. 1.] 2
  """
  fn = _default_avg if multi_avg_fn is None else multi_avg_fn

  def init(params):
    return AveragedParamsState(averaged=jax.tree.map(jnp.asarray, params), n_averaged=jnp.zeros([], jnp.int32))

  def update(state, params):
    params = jax.tree.map(jnp.asarray, params)
    first = state.n_averaged == 0
    averaged = fn(state.averaged, params, state.n_averaged)
    averaged = jax.tree.map(lambda p, a, old: jnp.where(first, p.astype(old.dtype), a).astype(old.dtype),
                            params, averaged, state.averaged)
    return AveragedParamsState(averaged=averaged, n_averaged=state.n_averaged + 1)

  return AveragedParams(init, update)


_COUNT = "ll_reduced_count"


@functools.cache
def _counting_batchnorm() -> tuple[type, type]:
  """An ``nnx.BatchNorm`` subclass that records how many elements each feature's statistics
  reduce over (``m``), in a variable (so the count also comes back out of ``nnx.jit``)."""
  from flax import nnx

  class ReducedCount(nnx.Variable):
    pass

  class CountingBatchNorm(nnx.BatchNorm):
    def __call__(self, x, use_running_average=None, *, mask=None):
      if mask is not None:
        raise ValueError("update_bn: BatchNorm masks are not supported (torch's update_bn has none)")
      axes = self.axis if isinstance(self.axis, tuple) else (self.axis,)
      features = math.prod(x.shape[a % x.ndim] for a in axes)
      getattr(self, _COUNT)[...] = jnp.asarray(x.size // features, jnp.float32)
      return super().__call__(x, use_running_average)

  return CountingBatchNorm, ReducedCount


def update_bn(loader: Iterable[Any], model: Any, *, forward: Callable[[Any, Any], Any] | None = None,
              unbiased: bool = True) -> None:
  r"""Recompute the running statistics of every ``nnx.BatchNorm`` in ``model`` over ``loader``.

  torch's ``update_bn``: reset each BatchNorm's running mean to 0 and variance to 1, then run one
  pass over the data with the batch statistics in use and *cumulative* averaging (torch's
  ``momentum=None``): after batch ``n``, with ``f = 1/n``,

  .. math::
     \mu_{run} \leftarrow (1 - f)\, \mu_{run} + f\, \mu_{batch},\qquad
     \sigma^2_{run} \leftarrow (1 - f)\, \sigma^2_{run} + f\, \frac{m}{m - 1}\, \sigma^2_{batch}

  i.e. the equal-weight mean over batches of each batch's mean and *unbiased* variance (``m``:
  the number of elements each feature's statistics reduce over in that batch), as torch keeps.
  Each BatchNorm's ``momentum`` and ``use_running_average`` are restored afterwards. Modifies
  ``model`` in place.

  Args:
    loader: an iterable of batches; a batch that is a list or tuple contributes its first element
      (as in torch).
    model: an ``nnx.Module`` containing ``nnx.BatchNorm`` layers (nothing happens without any).
    forward: ``forward(model, x)`` runs the model (default ``model(x)``; an ``nnx.jit`` function
      works too); use it to pass other call arguments, e.g. to put dropout in the mode you want
      (torch runs the whole model in ``train()`` mode, which also enables dropout).
    unbiased: keep torch's unbiased batch variance (default). ``False`` keeps the biased one
      (divided by ``m``), which is what ``nnx.BatchNorm`` itself accumulates in training.

  Notes:
    Torch twin: ``torch.optim.swa_utils.update_bn(loader, model)``; tested against it (means and
    variances, float32). During the pass each BatchNorm's class is temporarily a subclass that
    records ``m`` (restored afterwards, also on error); BatchNorm masks are refused.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import losslab_jax as ll
    >>> bn = nnx.BatchNorm(1, rngs=nnx.Rngs(0), use_running_average=True)
    >>> ll.optim.update_bn([jnp.array([[1.0], [3.0]]), jnp.array([[5.0], [7.0]])], bn)
    >>> print(bn.mean[...], bn.var[...])  # means 2 and 6, unbiased variances 2 and 2 (torch's)
    [4.] [2.]
  """
  from flax import nnx

  layers = [m for _, m in nnx.iter_graph(model) if isinstance(m, nnx.BatchNorm)]
  if not layers:
    return
  counting, reduced_count = _counting_batchnorm()
  saved = [(type(m), m.momentum, m.use_running_average) for m in layers]
  mean = [jnp.zeros_like(m.mean[...]) for m in layers]
  var = [jnp.ones_like(m.var[...]) for m in layers]
  try:
    for m in layers:
      m.__class__ = counting
      setattr(m, _COUNT, reduced_count(jnp.zeros((), jnp.float32)))
      m.use_running_average = False
      m.momentum = 0.0                # after a forward pass: mean, var = this batch's statistics
    n = 0
    for batch in loader:
      if isinstance(batch, (list, tuple)):
        batch = batch[0]
      n += 1
      for m in layers:                # 0 * (a NaN from an earlier batch) would stay NaN
        m.mean[...] = jnp.zeros_like(m.mean[...])
        m.var[...] = jnp.zeros_like(m.var[...])
      if forward is None:
        model(batch)
      else:
        forward(model, batch)
      f = 1.0 / n                     # torch: exponential_average_factor = 1 / num_batches_tracked
      for i, m in enumerate(layers):
        batch_var = m.var[...]
        if unbiased:
          count = getattr(m, _COUNT)[...]
          batch_var = batch_var * (count / (count - 1)).astype(batch_var.dtype)
        mean[i] = (f * m.mean[...] + (1 - f) * mean[i]).astype(mean[i].dtype)
        var[i] = (f * batch_var + (1 - f) * var[i]).astype(var[i].dtype)
  finally:
    for i, (m, (cls, momentum, use_running_average)) in enumerate(zip(layers, saved)):
      m.__class__ = cls
      if hasattr(m, _COUNT):
        delattr(m, _COUNT)
      m.momentum, m.use_running_average = momentum, use_running_average
      m.mean[...] = mean[i]
      m.var[...] = var[i]
