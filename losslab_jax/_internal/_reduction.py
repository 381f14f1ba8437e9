"""The one reduction every loss goes through."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def reduce(
    loss: jax.Array,
    reduction: str,
    *,
    weight: jax.Array | None = None,
) -> jax.Array:
  """Apply torch's ``reduction`` to an elementwise loss.

  Args:
    loss: elementwise loss, already multiplied by any per-element weight.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"`` | ``"batchmean"``.
    weight: for a weighted mean, the per-element weights whose sum is the denominator
      (torch's ``cross_entropy``/``nll_loss`` rule: the sum of the weights of the non-ignored
      targets; masked entries carry weight 0). ``None``: the plain mean over all elements.

  Returns:
    ``loss`` for ``"none"``, else a scalar in ``loss.dtype``. A mean over zero elements (or
    zero total weight) is NaN, as in torch.
  """
  if reduction == "none":
    return loss
  if reduction == "sum":
    return jnp.sum(loss)
  if reduction == "batchmean":
    batch = loss.shape[0] if loss.ndim else 1
    return jnp.sum(loss) / jnp.asarray(batch, loss.dtype)
  if reduction == "mean":
    if weight is None:
      return jnp.mean(loss)
    return jnp.sum(loss) / jnp.sum(weight).astype(loss.dtype)
  raise ValueError(f"reduce: unknown reduction {reduction!r}")
