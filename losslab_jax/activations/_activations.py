"""Activations with torch-equal values and gradients, stable for every finite input.

softmax, log_softmax and tanh carry ``jax.custom_jvp`` rules written so that their transposes (the
VJPs that ``jax.grad`` evaluates) are torch's backward formulas operation for operation; forward
mode and Hessians keep working.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from losslab_jax._internal import _dtypes


@jax.custom_jvp
def _relu_kernel(x: jax.Array) -> jax.Array:
  """``max(0, x)`` that keeps NaN: ``where(x <= 0, 0, x)`` (``where(x > 0, x, 0)`` maps NaN to 0)."""
  return jnp.where(x <= 0, jnp.zeros_like(x), x)


@_relu_kernel.defjvp
def _relu_kernel_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  # slope 1 above 0, torch's 0 at the kink and below, NaN at NaN (never a plausible number)
  slope = jnp.where(x > 0, jnp.ones_like(x), jnp.where(x <= 0, jnp.zeros_like(x), jnp.full_like(x, jnp.nan)))
  return _relu_kernel(x), slope * dx


def relu(input: ArrayLike) -> jax.Array:
  r"""Rectified linear unit, :math:`\max(0, x)`.

  Args:
    input: any shape, floating.

  Returns:
    Same shape and dtype.

  Notes:
    Torch twin: ``torch.relu``. The gradient at exactly 0 is 0, as in torch. A NaN input gives a
    NaN value and a NaN gradient (torch's gradient there is 1; NaN keeps a poisoned step visible).
    Parity: exact in float32 and float64 (case ``relu``).

  Examples:
    >>> import jax.numpy as jnp
    >>> relu(jnp.array([-1.0, 0.0, 2.0])).tolist()
    [0.0, 0.0, 2.0]
  """
  return _relu_kernel(jnp.asarray(input))


def sigmoid(input: ArrayLike) -> jax.Array:
  r"""Logistic sigmoid, :math:`\sigma(x) = 1 / (1 + e^{-x})`, stable for any finite ``x``.

  Args:
    input: any shape, floating.

  Returns:
    Same shape and dtype, in :math:`[0, 1]`.

  Notes:
    Torch twin: ``torch.sigmoid``. Gradient :math:`\sigma(x)(1 - \sigma(x))`, exactly 0 at
    :math:`\pm 10^4`.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``sigmoid``).

  Examples:
    >>> import jax.numpy as jnp
    >>> float(sigmoid(jnp.array(0.0)))
    0.5
  """
  return jax.nn.sigmoid(jnp.asarray(input))


def _tanh_small(x: jax.Array) -> jax.Array:
  """tanh for |x| < 0.625: Cephes' odd approximations (float32 polynomial, float64 rational)."""
  z = x * x
  if x.dtype == jnp.float64:
    p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3
    q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3
    return x + x * z * (p / q)
  p = (((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z
       + 1.33314422036e-1) * z - 3.33332819422e-1
  return p * z * x + x


def _tanh_value(x: jax.Array) -> jax.Array:
  # Near 0 an odd approximation keeps every digit; elsewhere 1 - 2/(e^{2|x|} + 1) rounds like a
  # correctly rounded tanh. (XLA's float32 tanh and expm1 are off by up to ~4-5 ulp, and the
  # gradient 1 - y^2 magnifies that where tanh saturates.)
  ax = jnp.abs(x)
  small = ax < 0.625
  big = 1 - 2 / (jnp.exp(2 * jnp.minimum(ax, 20.0)) + 1)  # tanh(20) rounds to 1 in float64 too
  # copysign: odd, keeps tanh(-0.0) == -0.0 as torch, and NaN stays NaN
  return jnp.copysign(jnp.where(small, _tanh_small(jnp.where(small, x, 0.0)), big), x)


@jax.custom_jvp
def _tanh(x: jax.Array) -> jax.Array:
  return _tanh_value(x)


@_tanh.defjvp
def _tanh_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  y = _tanh(x)
  return y, dx * (1 - y * y)  # torch's tanh_backward: grad * (1 - y * y)


def tanh(input: ArrayLike) -> jax.Array:
  r"""Hyperbolic tangent, accurate to about 1 ulp in float32.

  Args:
    input: any shape, floating.

  Returns:
    Same shape and dtype, in :math:`[-1, 1]`.

  Notes:
    Torch twin: ``torch.tanh``. Gradient :math:`1 - \tanh^2 x` from the rounded output, as torch
    computes it. Where that gradient is tiny (:math:`|x| \approx 4`–:math:`9` in float32) a 1-ulp
    difference in :math:`\tanh x` is a large relative difference in it; torch's own tanh is not
    correctly rounded there either.
    Parity: float64 <= 1e-10, float32 <= 2e-4 (case ``tanh``; the reason is on the case).

  Examples:
    >>> import jax.numpy as jnp
    >>> float(tanh(jnp.array(0.0)))
    0.0
  """
  x = jnp.asarray(input)
  if not _dtypes.is_floating(x):
    return jnp.tanh(x)
  cdt = _dtypes.compute_dtype(x.dtype)
  return _tanh(x.astype(cdt)).astype(x.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _softmax(x: jax.Array, axis: int) -> jax.Array:
  unnormalized = jnp.exp(x - jnp.max(x, axis, keepdims=True))
  return unnormalized / jnp.sum(unnormalized, axis, keepdims=True)


@_softmax.defjvp
def _softmax_jvp(axis, primals, tangents):
  (x,), (dx,) = primals, tangents
  y = _softmax(x, axis)
  w = y * dx
  # written as y dx - y sum(y dx) so that its transpose is torch's y * (g - sum(g * y))
  return y, w - y * jnp.sum(w, axis, keepdims=True)


def softmax(input: ArrayLike, axis: int = -1) -> jax.Array:
  r"""Softmax along ``axis``: :math:`e^{x_i - m} / \sum_j e^{x_j - m}` with :math:`m = \max_j x_j`.

  Args:
    input: any shape, floating.
    axis: the axis that sums to 1 (torch's ``dim``).

  Returns:
    Same shape and dtype.

  Notes:
    Torch twin: ``torch.softmax(x, dim=axis)``. Subtracting the max keeps it finite for logits of
    any finite size (±1e4 included). The VJP is torch's :math:`y \odot (g - \langle g, y\rangle)`
    (``jax.nn.softmax`` evaluates :math:`y g - y \langle g, y\rangle`, which rounds differently).
    Parity: float64 <= 1e-10; float32 values <= 1e-5, float32 gradients <= 3e-4 (case ``softmax``:
    the gradient cancels where :math:`y \approx 1`; torch's own float32 gradient is as far from a
    float64 evaluation, 4.4e-4 at worst over 16 seeds).

  Examples:
    >>> import jax.numpy as jnp
    >>> softmax(jnp.array([0.0, 0.0])).tolist()
    [0.5, 0.5]
  """
  return _softmax(jnp.asarray(input), axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _log_softmax(x: jax.Array, axis: int) -> jax.Array:
  shifted = x - jnp.max(x, axis, keepdims=True)
  return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis, keepdims=True))


@_log_softmax.defjvp
def _log_softmax_jvp(axis, primals, tangents):
  (x,), (dx,) = primals, tangents
  y = _log_softmax(x, axis)
  # transpose: g - exp(y) * sum(g), torch's log_softmax_backward
  return y, dx - jnp.sum(jnp.exp(y) * dx, axis, keepdims=True)


def log_softmax(input: ArrayLike, axis: int = -1) -> jax.Array:
  r"""Log-softmax along ``axis``: :math:`x_i - \operatorname{logsumexp}_j x_j`.

  Args:
    input: any shape, floating.
    axis: the normalised axis (torch's ``dim``).

  Returns:
    Same shape and dtype.

  Notes:
    Torch twin: ``torch.log_softmax(x, dim=axis)``. Finite for any finite logits; the VJP is
    torch's :math:`g - e^{y} \sum g`.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``log_softmax``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import math
    >>> abs(float(log_softmax(jnp.array([0.0, 0.0]))[0]) + math.log(2)) < 1e-7
    True
  """
  return _log_softmax(jnp.asarray(input), axis)
