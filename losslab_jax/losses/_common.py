"""Canonicalisation shared by the loss modules (private)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from losslab_jax._internal import _checks, _dtypes


def prepare_pair(
    fn: str, input: ArrayLike, target: ArrayLike, names: tuple[str, str] = ("input", "target")
) -> tuple[jax.Array, jax.Array, jnp.dtype]:
  """Check and canonicalise an ``(input, target)`` pair of same-shape floating arrays.

  Returns ``(input, target, out_dtype)`` with both arrays cast to the internal compute dtype
  (float32 for half precisions); ``out_dtype`` is the promoted floating dtype to cast back to.

  Torch broadcasts mismatched shapes with a UserWarning; we raise instead, because a
  broadcast target is almost always a bug (``(N,)`` against ``(N, 1)``, say).
  """
  x = jnp.asarray(input)
  t = jnp.asarray(target)
  _checks.check_floating(fn, names[0], x)
  _checks.check_floating(fn, names[1], t)
  _checks.check_same_shape(fn, names, x, t)
  out_dtype = _dtypes.result_float_dtype(x, t)
  cdt = _dtypes.compute_dtype(out_dtype)
  return x.astype(cdt), t.astype(cdt), out_dtype


@jax.custom_jvp
def abs_torch_grad(d: jax.Array) -> jax.Array:
  """``|d|`` with torch's gradient ``sign(d)``: 0 at ``d == 0``, +-1 at +-inf, NaN at NaN.

  ``jnp.abs`` has gradient 1 at 0; ``sign(d) * d`` has NaN at +-inf (``0 * inf`` from the
  derivative of ``sign``).
  """
  return jnp.abs(d)


@abs_torch_grad.defjvp
def _abs_torch_grad_jvp(primals, tangents):
  (d,), (dd,) = primals, tangents
  return jnp.abs(d), jnp.sign(d) * dd
