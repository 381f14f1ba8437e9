"""Dtype rules: the compute dtype is the promoted floating dtype of the floating inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def is_floating(x: jax.Array) -> bool:
  return jnp.issubdtype(x.dtype, jnp.floating)


def is_integer(x: jax.Array) -> bool:
  return jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_


def result_float_dtype(*arrays: jax.Array | None) -> jnp.dtype:
  """Promoted dtype of the floating arrays among ``arrays`` (integers and None are ignored)."""
  floats = [a.dtype for a in arrays if a is not None and is_floating(a)]
  if not floats:
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))  # float32 unless x64 is on
  return jnp.result_type(*floats)


def compute_dtype(dtype: jnp.dtype) -> jnp.dtype:
  """The dtype losses compute in: float16/bfloat16 are upcast to float32 internally.

  The result is cast back to the input dtype, so bf16/f16 in gives bf16/f16 out, but
  the logsumexp/log1p internals keep float32 accuracy, as torch's CPU kernels do.
  """
  if jnp.finfo(dtype).bits < 32:
    return jnp.dtype(jnp.float32)
  return jnp.dtype(dtype)
