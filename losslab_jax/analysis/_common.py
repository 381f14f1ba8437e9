"""Helpers shared by the analysis tools (private).

Every tool takes a user callable (``loss_fn``, an optimizer factory). Eager calls run through one
``jax.jit`` whose static arguments are that callable and the shape-deciding options, so a second
call with the same callable and new array values does not retrace. Callables that cannot be
hashed are run unjitted (still one vectorised program per tool; wrap the call in ``jax.jit``).

A ``flax.nnx`` module passed as ``params`` is split with :func:`module_params`: the tools
differentiate and perturb its ``nnx.Param`` variables only; BatchNorm running statistics and every
other variable reach ``loss_fn`` unchanged.
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
  """``"dense/kernel"``-style names for the leaves of ``tree``, in flatten order.

  The trailing ``.value`` of a ``flax.nnx`` Variable is dropped (``lin/kernel``, not
  ``lin/kernel/value``).
  """
  names = []
  for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if path and isinstance(path[-1], jax.tree_util.GetAttrKey) and path[-1].name == "value":
      path = path[:-1]
    names.append(jax.tree_util.keystr(path, simple=True, separator="/") or "params")
  return names


class _MergedLoss:
  """``loss_fn`` of an nnx module, called on the module's ``nnx.Param`` state.

  ``self(params, *args, rest)`` merges ``params`` (what the tool differentiates or perturbs) with
  ``rest`` (every other variable, BatchNorm statistics included, passed as the last argument so it
  stays a traced input, not a constant) back into the module and calls ``loss_fn(module, *args)``.
  Hashes by ``(loss_fn, graphdef)``, so repeated calls hit the tools' jit cache.
  """

  def __init__(self, loss_fn: Callable[..., Any], graphdef: Any):
    self.loss_fn = loss_fn
    self.graphdef = graphdef

  def __call__(self, params: Any, *args: Any) -> Any:
    from flax import nnx

    return self.loss_fn(nnx.merge(self.graphdef, params, args[-1]), *args[:-1])

  def __hash__(self) -> int:
    return hash((self.loss_fn, self.graphdef))

  def __eq__(self, other: object) -> bool:
    return isinstance(other, _MergedLoss) and (self.loss_fn, self.graphdef) == (other.loss_fn, other.graphdef)


def _nnx() -> Any:
  """``flax.nnx`` when flax is already imported (a user with an nnx model has imported it), else None."""
  import sys

  if "flax.nnx" not in sys.modules and "flax" not in sys.modules:
    return None
  from flax import nnx

  return nnx


def module_params(fn: str, loss_fn: Callable[..., Any], params: Any) -> tuple[Callable[..., Any], Any, tuple[Any, ...]]:
  """``(loss_fn, params, extra)`` for a tool: an nnx module is reduced to its ``nnx.Param`` state.

  For a ``flax.nnx.Module``, ``params`` becomes ``nnx.state(module, nnx.Param)``, ``extra`` is
  ``(rest,)`` (every other variable: BatchNorm running statistics, RNG counters...), and the
  returned loss takes ``(param_state, *args, rest)``; the tools pass ``extra`` after the user's
  arguments. Any other pytree is returned as is with ``extra = ()``. A pytree that holds
  non-``Param`` nnx variables (``nnx.state(model)`` with its ``BatchStat`` variables) is refused: the
  tool would differentiate and perturb running statistics as if they were weights.
  """
  nnx = _nnx()
  if nnx is None:
    return loss_fn, params, ()
  if isinstance(params, nnx.Module):
    graphdef, param_state, rest = nnx.split(params, nnx.Param, ...)
    return _MergedLoss(loss_fn, graphdef), param_state, (rest,)
  variables = jax.tree_util.tree_flatten_with_path(params, is_leaf=lambda x: isinstance(x, nnx.Variable))[0]
  for path, leaf in variables:
    if isinstance(leaf, nnx.Variable) and not isinstance(leaf, nnx.Param):
      where = jax.tree_util.keystr(path, simple=True, separator="/") or "(the root)"
      raise TypeError(
          f"{fn}: `params` holds a {type(leaf).__name__} variable at {where}, which is not a trainable"
          f" parameter; pass the nnx module itself (its nnx.Param variables are analysed, the rest is"
          f" held fixed) or nnx.state(model, nnx.Param)")
  return loss_fn, params, ()


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
