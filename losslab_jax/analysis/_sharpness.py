"""Sharpness: the top Hessian eigenvalue by power iteration on Hessian-vector products."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from losslab_jax.analysis import _common
from losslab_jax.analysis._results import SharpnessResult


def sharpness(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    *args: Any,
    iters: int = 20,
    key: jax.Array | None = None,
) -> SharpnessResult:
  r"""The Hessian's dominant eigenvalue at ``params``, by power iteration.

  The loss's curvature along its sharpest direction: gradient descent with learning rate
  :math:`\eta` is stable on a quadratic only while :math:`\eta < 2 / \lambda_{\max}`, so
  :math:`\lambda_{\max}` tells which learning rates a minimum tolerates ("edge of stability").
  Each iteration costs one Hessian-vector product (forward-over-reverse, ``jax.linearize`` of
  ``jax.grad``, linearised once); the Hessian is never formed.

  .. math::
     v_0 = \frac{z}{\|z\|}, \; z \sim \mathcal N(0, I), \qquad
     \lambda_k = v_k^\top H v_k, \qquad v_{k+1} = \frac{H v_k}{\|H v_k\|}, \qquad
     k = 0, \dots, \mathrm{iters} - 1,

  with :math:`H = \nabla^2_\theta L(\theta)` and the result :math:`\lambda_{\mathrm{iters}-1}`.

  Args:
    loss_fn: ``loss_fn(params, *args) -> scalar``, twice differentiable.
    params: a pytree of floating arrays, or a ``flax.nnx`` module (then ``loss_fn(model,
      *args)``): the Hessian is taken over its ``nnx.Param`` variables only (BatchNorm running
      statistics and other variables are held fixed), and ``eigenvector`` is an ``nnx.State``
      of those parameters.
    *args: passed to ``loss_fn`` unchanged (data, targets).
    iters: number of power iterations (Hessian-vector products), ``>= 1``. The error in the
      eigenvalue shrinks like :math:`|\lambda_2 / \lambda_1|^{2k}`; check ``residual``.
    key: ``jax.random`` key for the starting vector; ``None`` uses ``jax.random.key(0)``, so the
      default call is deterministic.

  Returns:
    A :class:`SharpnessResult`: ``max_eigenvalue``, ``eigenvector`` (a pytree like ``params``,
    unit norm), ``eigenvalue_history`` (shape ``[iters]``) and ``residual``
    (:math:`\|Hv - \lambda v\|`).

  Raises:
    TypeError: a leaf of ``params`` is not floating, ``params`` holds nnx variables that are not
      ``nnx.Param``, or ``loss_fn`` does not return a scalar (raised by ``jax.grad``).
    ValueError: ``iters < 1`` or ``params`` is empty.

  Notes:
    Torch twin: none in torch; the same power iteration PyHessian runs on ``autograd.grad`` with
    ``create_graph=True``. Power iteration finds the eigenvalue of largest *magnitude*; at a
    minimum (positive semi-definite Hessian) that is the largest eigenvalue, at a saddle it may
    be a negative one, and it is returned with its sign. A zero Hessian gives 0.
    Parity: no torch twin; tests compare with ``numpy.linalg.eigvalsh`` on quadratics.

  Examples:
    >>> import jax.numpy as jnp
    >>> a = jnp.array([[3.0, 1.0], [1.0, 3.0]])  # eigenvalues 4 and 2
    >>> round(float(sharpness(lambda w: 0.5 * w @ a @ w, jnp.zeros(2), iters=30).max_eigenvalue), 5)
    4.0

  References:
    Yao, Gholami, Keutzer, Mahoney, `PyHessian: Neural Networks Through the Lens of the Hessian
    <https://arxiv.org/abs/1912.07145>`_, 2020.
  """
  fn = "sharpness"
  if not isinstance(iters, (int, np.integer)) or isinstance(iters, bool) or iters < 1:
    raise ValueError(f"{fn}: expected `iters` an int >= 1, got {iters!r}")
  loss_fn, params, extra = _common.module_params(fn, loss_fn, params)
  _common.check_floating_tree(fn, "params", params)
  if key is None:
    key = jax.random.key(0)
  static = dict(loss_fn=loss_fn, iters=int(iters))
  return _common.run(_sharpness, _sharpness_jit, static, params, key, (*args, *extra))


def _sharpness(params, key, args, *, loss_fn, iters):
  flat, unravel = ravel_pytree(params)

  def grad_flat(x):
    return ravel_pytree(jax.grad(loss_fn)(unravel(x), *args))[0]

  _, hvp = jax.linearize(grad_flat, flat)

  def step(carry, _):
    v = carry[0]
    hv = hvp(v)
    return (_unit(hv), v, hv), jnp.vdot(v, hv)

  v0 = _unit(jax.random.normal(key, flat.shape, flat.dtype))
  (_, v, hv), history = jax.lax.scan(step, (v0, v0, v0), None, length=iters)
  eig = history[-1]
  return SharpnessResult(
      max_eigenvalue=eig,
      eigenvector=unravel(v),
      eigenvalue_history=history,
      residual=jnp.linalg.norm(hv - eig * v),
  )


_sharpness_jit = jax.jit(_sharpness, static_argnames=("loss_fn", "iters"))


def _unit(x: jax.Array) -> jax.Array:
  norm = jnp.linalg.norm(x)
  return jnp.where(norm > 0, x / jnp.where(norm > 0, norm, 1), x)
