"""The weight map parity uses: ``ll.interop.torch.copy_weights``'s when it exists, else a minimal one.

The comparisons need four things from a weight map (the protocol :class:`WeightMapLike`):
``torch_names`` (parameter names in ``named_parameters()`` order), ``nnx_path(name)``,
``tree_to_torch(tree)`` (an nnx ``Param``-state-shaped tree -> ``{torch name: array in torch
layout}``) and ``tree_from_torch(tensors)``. :func:`copy_weights` is the interop function; the
fallback below (standard layers only: Linear, Conv, LayerNorm, GroupNorm, BatchNorm, Embedding,
matched by path) keeps parity usable with an interop that predates it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np


class WeightMapLike(Protocol):
  torch_names: list[str]

  def nnx_path(self, name: str) -> tuple: ...

  def tree_to_torch(self, tree: Any) -> dict[str, np.ndarray]: ...

  def tree_from_torch(self, tensors: Mapping[str, Any], *, dtype: Any = None) -> Any: ...


def copy_weights(torch_module: Any, nnx_module: Any, **kwargs: Any) -> WeightMapLike:
  """``ll.interop.torch.copy_weights`` if interop has it, else :func:`_fallback_copy_weights`."""
  from losslab_jax.interop import torch as llt

  fn = getattr(llt, "copy_weights", None)
  if fn is not None:
    return fn(torch_module, nnx_module, **kwargs)
  return _fallback_copy_weights(torch_module, nnx_module)


def _np(t: Any) -> np.ndarray:
  if hasattr(t, "detach"):
    t = t.detach().cpu().numpy()
  return np.asarray(t)


def _rules(torch_mod: Any) -> dict[str, tuple[str, Callable, Callable]]:
  from torch import nn

  same = (lambda a: a, lambda a: a)
  if isinstance(torch_mod, nn.Linear):
    return {"weight": ("kernel", lambda a: a.T, lambda a: a.T), "bias": ("bias", *same)}
  if isinstance(torch_mod, nn.modules.conv._ConvNd) and not torch_mod.transposed:
    nd = torch_mod.weight.ndim

    def to_nnx(a):  # (out, in, *k) -> (*k, in, out)
      return np.transpose(a, (*range(2, nd), 1, 0))

    def to_torch(a):  # (*k, in, out) -> (out, in, *k)
      return np.transpose(a, (nd - 1, nd - 2, *range(nd - 2)))

    return {"weight": ("kernel", to_nnx, to_torch), "bias": ("bias", *same)}
  if isinstance(torch_mod, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)):
    return {"weight": ("scale", *same), "bias": ("bias", *same), "running_mean": ("mean", *same),
            "running_var": ("var", *same)}
  if isinstance(torch_mod, nn.Embedding):
    return {"weight": ("embedding", *same)}
  return {}


class _FallbackMap:
  """A minimal weight map over the standard layers, matched by path."""

  def __init__(self, torch_module: Any, nnx_module: Any):
    from flax import nnx

    from parity._port._capture import nnx_dotted, nnx_modules

    mods = nnx_modules(nnx_module)
    by_dotted = {nnx_dotted(p, mods): p for p in mods}
    self._rule: dict[str, tuple[tuple, Callable, Callable]] = {}
    problems = []
    for mname, mod in torch_module.named_modules():
      rules = _rules(mod)
      for pname, _ in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
        full = f"{mname}.{pname}" if mname else pname
        if pname == "num_batches_tracked":
          continue
        if pname not in rules or mname not in by_dotted:
          problems.append(full)
          continue
        attr, to_nnx, to_torch = rules[pname]
        self._rule[full] = ((*by_dotted[mname], attr), to_nnx, to_torch)
    if problems:
      raise ValueError(f"copy_weights: cannot place torch tensors {problems}")
    self.torch_names = [n for n, _ in torch_module.named_parameters()]
    self.buffer_names = [n for n, _ in torch_module.named_buffers() if n in self._rule]
    self._template = nnx.state(nnx_module, nnx.Param)

  def nnx_path(self, name: str) -> tuple:
    return self._rule[name][0]

  def torch_name(self, path: tuple) -> str:
    return next(n for n, r in self._rule.items() if r[0] == tuple(path))

  def tree_to_torch(self, tree: Any) -> dict[str, np.ndarray]:
    from flax import nnx

    pure = nnx.to_pure_dict(tree) if isinstance(tree, nnx.State) else tree
    out = {}
    for name in self.torch_names:
      node = pure
      for k in self.nnx_path(name):
        node = node[k]
      out[name] = np.asarray(self._rule[name][2](np.asarray(node)))
    return out

  def tree_from_torch(self, tensors: Mapping[str, Any], *, dtype: Any = None) -> Any:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    pure: dict = {}
    for name in self.torch_names:
      a = self._rule[name][1](_np(tensors[name]))
      node = pure
      path = self.nnx_path(name)
      for k in path[:-1]:
        node = node.setdefault(k, {})
      node[path[-1]] = jnp.asarray(np.ascontiguousarray(a), dtype=dtype)
    state = jax.tree_util.tree_map(lambda x: x, self._template)
    nnx.replace_by_pure_dict(state, pure)
    return state

  def copy(self, torch_module: Any, nnx_module: Any) -> None:
    import jax.numpy as jnp
    from flax import nnx

    tensors = dict(torch_module.named_parameters()) | dict(torch_module.named_buffers())
    targets = dict(nnx.iter_graph(nnx_module))
    for name, (path, to_nnx, _) in self._rule.items():
      var = targets[path]
      var[...] = jnp.asarray(np.ascontiguousarray(to_nnx(_np(tensors[name]))), dtype=var[...].dtype)


def _fallback_copy_weights(torch_module: Any, nnx_module: Any) -> _FallbackMap:
  wm = _FallbackMap(torch_module, nnx_module)
  wm.copy(torch_module, nnx_module)
  return wm
