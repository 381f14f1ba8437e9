"""Helpers shared by the analysis tools (private).

Every tool takes a user callable (``loss_fn``, an optimizer factory). Eager calls run through one
``jax.jit`` whose static arguments are that callable and the shape-deciding options, so a second
call with the same callable and new array values does not retrace. Callables that cannot be
hashed are run unjitted (still one vectorised program per tool; wrap the call in ``jax.jit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from losslab_jax._internal import _dtypes


def hashable(*objs: Any) -> bool:
  try:
    for obj in objs:
      hash(obj)
  except TypeError:
    return False
  return True


def run(impl: Callable[..., Any], jitted: Callable[..., Any], static: dict[str, Any], *dynamic: Any) -> Any:
  """``jitted(*dynamic, **static)`` when every static value hashes, else ``impl``."""
  fn = jitted if hashable(*static.values()) else impl
  return fn(*dynamic, **static)


def leaf_names(tree: Any) -> list[str]:
  """``"dense/kernel"``-style names for the leaves of ``tree``, in flatten order."""
  paths = jax.tree_util.tree_flatten_with_path(tree)[0]
  names = [jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in paths]
  return [name or "params" for name in names]


def check_floating_tree(fn: str, name: str, tree: Any) -> None:
  """Every leaf of ``tree`` must be a floating array (``jax.grad`` needs it)."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  if not leaves:
    raise ValueError(f"{fn}: expected `{name}` with at least one array leaf, got an empty pytree")
  for path, leaf in leaves:
    dtype = jnp.result_type(leaf)
    if not jnp.issubdtype(dtype, jnp.floating):
      where = jax.tree_util.keystr(path) or "(the root)"
      raise TypeError(
          f"{fn}: expected every leaf of `{name}` to be floating, got dtype {dtype} at {where}"
          f"; differentiate with respect to the floating parameters only"
      )


def tree_float_dtype(tree: Any) -> jnp.dtype:
  """The promoted floating dtype of the leaves (float32, or float64 under x64, if none float)."""
  return _dtypes.result_float_dtype(*(jnp.asarray(x) for x in jax.tree.leaves(tree)))


def stat_dtype(dtype: jnp.dtype) -> jnp.dtype:
  """At least float32: statistics of bf16/f16 arrays are accumulated in float32."""
  return _dtypes.compute_dtype(jnp.dtype(dtype))
