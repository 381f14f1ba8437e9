"""Activations with torch-equal values and gradients, stable for every finite input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def relu(input: ArrayLike) -> jax.Array:
  r"""Rectified linear unit, :math:`\max(0, x)`.

  Torch twin: ``torch.nn.functional.relu``. The gradient at exactly 0 is 0, as in torch.
  """
  x = jnp.asarray(input)
  return jnp.where(x > 0, x, jnp.zeros_like(x))


def sigmoid(input: ArrayLike) -> jax.Array:
  r"""Logistic sigmoid, :math:`1 / (1 + e^{-x})`, stable for any finite ``x``.

  Torch twin: ``torch.sigmoid``. Gradient :math:`\sigma(x)(1-\sigma(x))`.
  """
  return jax.nn.sigmoid(jnp.asarray(input))


def tanh(input: ArrayLike) -> jax.Array:
  r"""Hyperbolic tangent. Torch twin: ``torch.tanh``. Gradient :math:`1 - \tanh^2 x`."""
  return jnp.tanh(jnp.asarray(input))


def softmax(input: ArrayLike, axis: int = -1) -> jax.Array:
  r"""Softmax along ``axis``: :math:`e^{x_i - m} / \sum_j e^{x_j - m}` with :math:`m = \max_j x_j`.

  Torch twin: ``torch.softmax(x, dim=axis)``. Subtracting the max keeps it finite for logits of
  any finite size (±1e4 included).
  """
  return jax.nn.softmax(jnp.asarray(input), axis=axis)


def log_softmax(input: ArrayLike, axis: int = -1) -> jax.Array:
  r"""Log-softmax along ``axis``: :math:`x_i - \operatorname{logsumexp}_j x_j`.

  Torch twin: ``torch.log_softmax(x, dim=axis)``.
  """
  return jax.nn.log_softmax(jnp.asarray(input), axis=axis)
