"""Gradient flow: per-layer gradient statistics, and which layers vanish or explode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from losslab_jax.analysis import _common
from losslab_jax.analysis._results import GradientFlowResult, LayerGradientStats


def gradient_flow(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    *args: Any,
    vanishing_threshold: float = 1e-6,
    exploding_threshold: float = 1e3,
) -> GradientFlowResult:
  r"""Per-leaf gradient statistics of ``loss_fn`` at ``params``, with vanishing/exploding flags.

  One ``jax.value_and_grad`` call, then for every leaf :math:`g_l` of the gradient (one layer's
  kernel or bias) its norm, mean, standard deviation and largest magnitude. Use it when the loss
  will not move (some layers get no gradient) or jumps (some layers get far too much).

  .. math::
     \|g_l\|_2 = \Big(\sum_i g_{l,i}^2\Big)^{1/2}, \quad
     \bar g_l = \frac{1}{n_l}\sum_i g_{l,i}, \quad
     \sigma_l = \Big(\frac{1}{n_l}\sum_i (g_{l,i} - \bar g_l)^2\Big)^{1/2}, \quad
     \|g\|_2 = \Big(\sum_l \|g_l\|_2^2\Big)^{1/2},

  where :math:`n_l` is the number of entries of leaf :math:`l`. A leaf is *vanishing* when
  :math:`\|g_l\|_2 <` ``vanishing_threshold`` and *exploding* when
  :math:`\|g_l\|_2 >` ``exploding_threshold``.

  Args:
    loss_fn: ``loss_fn(params, *args) -> scalar``.
    params: a pytree of floating arrays, or a ``flax.nnx`` module (then ``loss_fn(model,
      *args)``): only its ``nnx.Param`` variables are differentiated and reported (named
      ``"lin/kernel"``); BatchNorm running statistics and other variables are held as they are.
    *args: passed to ``loss_fn`` unchanged (data, targets).
    vanishing_threshold: a leaf whose gradient norm is below this is flagged (default ``1e-6``).
    exploding_threshold: a leaf whose gradient norm is above this is flagged (default ``1e3``).

  Returns:
    A :class:`GradientFlowResult` with ``loss_value``, ``total_gradient_norm``,
    ``gradient_stats`` (``{"dense/kernel": LayerGradientStats(norm, mean, std, max_abs,
    vanishing, exploding)}``), ``num_vanishing`` and ``num_exploding``. Statistics of bf16/f16
    gradients are accumulated and returned in float32.

  Raises:
    TypeError: a leaf of ``params`` is not floating, ``params`` holds nnx variables that are not
      ``nnx.Param`` (pass the module itself, or ``nnx.state(model, nnx.Param)``), or ``loss_fn`` does not return a scalar
      (raised by ``jax.grad``).
    ValueError: ``params`` is empty, a threshold is negative, or
      ``vanishing_threshold > exploding_threshold``.

  Notes:
    Torch twin: none in torch; the per-parameter loop over ``p.grad`` that PyTorch analysers
    write (``p.grad.norm()``, ``.mean()``, ``.std()``, ``.abs().max()``). Difference: ``std`` uses
    ``ddof=0`` (numpy's default) where ``Tensor.std()`` uses ``ddof=1``, so a one-entry leaf has
    ``std = 0`` here, not NaN. The thresholds are heuristics: tune them to the model's scale.
    Parity: no torch twin; tests compare every statistic with numpy on ``jax.grad``'s arrays.

  Examples:
    >>> import jax.numpy as jnp
    >>> loss = lambda p: jnp.sum(p["w"] ** 2) + 0.0 * p["b"]
    >>> res = gradient_flow(loss, {"w": jnp.array([3.0, 4.0]), "b": jnp.array(1.0)})
    >>> float(res.total_gradient_norm), res.vanishing_layers()  # grad w = 2 w = [6, 8]
    (10.0, ['b'])
  """
  fn = "gradient_flow"
  loss_fn, params, extra = _common.module_params(fn, loss_fn, params)
  _common.check_floating_tree(fn, "params", params)
  thresholds = {"vanishing_threshold": vanishing_threshold, "exploding_threshold": exploding_threshold}
  for name, value in thresholds.items():
    if not value >= 0:
      raise ValueError(f"{fn}: expected `{name}` >= 0, got {value!r}")
  if vanishing_threshold > exploding_threshold:
    raise ValueError(
        f"{fn}: expected vanishing_threshold <= exploding_threshold, got {vanishing_threshold!r} >"
        f" {exploding_threshold!r}")
  static = dict(loss_fn=loss_fn, vanishing_threshold=float(vanishing_threshold),
                exploding_threshold=float(exploding_threshold))
  return _common.run(_gradient_flow, _gradient_flow_jit, static, params, (*args, *extra))


def _gradient_flow(params, args, *, loss_fn, vanishing_threshold, exploding_threshold):
  loss, grads = jax.value_and_grad(loss_fn)(params, *args)
  names = _common.leaf_names(grads)
  stats = {name: _leaf_stats(g, vanishing_threshold, exploding_threshold)
           for name, g in zip(names, jax.tree.leaves(grads))}
  norms = [s.norm for s in stats.values()]
  dtype = jnp.result_type(*norms)
  total = jnp.sqrt(sum(jnp.square(n.astype(dtype)) for n in norms))
  count = lambda flag: sum(getattr(s, flag).astype(jnp.int32) for s in stats.values())  # noqa: E731
  return GradientFlowResult(
      loss_value=loss,
      total_gradient_norm=total,
      gradient_stats=stats,
      num_vanishing=jnp.asarray(count("vanishing"), jnp.int32),
      num_exploding=jnp.asarray(count("exploding"), jnp.int32),
      vanishing_threshold=vanishing_threshold,
      exploding_threshold=exploding_threshold,
  )


_gradient_flow_jit = jax.jit(_gradient_flow,
                             static_argnames=("loss_fn", "vanishing_threshold", "exploding_threshold"))


def _leaf_stats(g: jax.Array, vanishing_threshold: float, exploding_threshold: float) -> LayerGradientStats:
  g32 = g.astype(_common.stat_dtype(g.dtype))
  norm = jnp.sqrt(jnp.sum(jnp.square(g32)))
  return LayerGradientStats(
      norm=norm,
      mean=jnp.mean(g32),
      std=jnp.std(g32),
      max_abs=jnp.max(jnp.abs(g32), initial=0),
      vanishing=norm < vanishing_threshold,
      exploding=norm > exploding_threshold,
      shape=tuple(g.shape),
  )
