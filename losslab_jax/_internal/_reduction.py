"""The one reduction every loss goes through."""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_jvp
def nan_sticky(loss: jax.Array) -> jax.Array:
  """Identity on values; a NaN entry of ``loss`` sends NaN back to everything it depends on.

  A loss that is linear in an input (``kl_div`` in ``input``, ``poisson_nll_loss`` in ``target``,
  ``nll_loss``'s gather) has a finite partial derivative even where the value is NaN, so a
  NaN batch would still produce a plausible-looking gradient. Scaling the tangent by NaN at NaN
  entries (and by exactly 1 elsewhere) makes the gradient non-finite wherever the value is NaN,
  and leaves every other gradient bit-for-bit unchanged.
  """
  return loss


@nan_sticky.defjvp
def _nan_sticky_jvp(primals, tangents):
  (loss,), (dloss,) = primals, tangents
  factor = jnp.where(jnp.isnan(loss), jnp.full_like(loss, jnp.nan), jnp.ones_like(loss))
  return loss, dloss * factor


def reduce(
    loss: jax.Array,
    reduction: str,
    *,
    weight: jax.Array | None = None,
    nan_grad: bool = False,
) -> jax.Array:
  """Apply torch's ``reduction`` to an elementwise loss.

  Args:
    loss: elementwise loss, already multiplied by any per-element weight.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"`` | ``"batchmean"``.
    weight: for a weighted mean, the per-element weights whose sum is the denominator
      (torch's ``cross_entropy``/``nll_loss`` rule: the sum of the weights of the non-ignored
      targets; masked entries carry weight 0). ``None``: the plain mean over all elements.
    nan_grad: pass ``loss`` through :func:`nan_sticky` first. For losses linear in an input
      (whose partial derivative stays finite at a NaN); the others already propagate NaN, and an
      elementwise pass over the loss costs up to 2x on a 16M-element ``mse_loss`` step.

  Returns:
    ``loss`` for ``"none"``, else a scalar in ``loss.dtype``. With ``nan_grad``, a NaN entry of
    ``loss`` has a NaN gradient with respect to every input it depends on. A mean over zero elements (or
    zero total weight) is NaN, as in torch.
  """
  if nan_grad:
    loss = nan_sticky(loss)
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
