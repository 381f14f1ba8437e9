"""Record every submodule call of a torch module (forward hooks) and of an nnx module (``__call__`` wrappers).

Both give a list of :class:`Call` in completion order (a child finishes before its parent). The
nnx side temporarily replaces ``__call__`` on the classes that define it (each class once, however
many instances) with a recording wrapper keyed by instance, and restores the originals in a
``finally`` block, so an exception in the user's forward pass leaves the classes as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np


@dataclasses.dataclass
class Call:
  """One call of a submodule: its path, which call of it this is, inputs and outputs as arrays."""

  path: str
  call: int
  type: str
  inputs: list[np.ndarray]
  outputs: list[np.ndarray]
  module: Any = None
  args: Any = None  # torch only: the (cloned) positional and keyword arguments, for reruns
  kwargs: Any = None
  traced: bool = False


def torch_leaves(x: Any) -> list[Any]:
  """The tensors of a nested tuple/list/dict (other leaves dropped), in order."""
  import torch

  if isinstance(x, torch.Tensor):
    return [x]
  if isinstance(x, dict):
    return [t for v in x.values() for t in torch_leaves(v)]
  if isinstance(x, (tuple, list)):
    return [t for v in x for t in torch_leaves(v)]
  return []


def _tnp(t) -> np.ndarray:
  t = t.detach().cpu()
  if str(t.dtype) == "torch.bfloat16":
    t = t.float()
  return t.numpy().copy()


def _clone(x: Any) -> Any:
  import torch

  if isinstance(x, torch.Tensor):
    return x.detach().clone()
  if isinstance(x, dict):
    return {k: _clone(v) for k, v in x.items()}
  if isinstance(x, tuple) and not hasattr(x, "_fields"):
    return tuple(_clone(v) for v in x)
  if isinstance(x, list):
    return [_clone(v) for v in x]
  return x


@contextlib.contextmanager
def torch_calls(module) -> Iterator[list[Call]]:
  """Record every submodule call of ``module`` (itself included, path ``""``) while the block runs."""
  calls: list[Call] = []
  counts: dict[str, int] = {}
  handles = []

  def hook_for(name):
    def hook(mod, args, kwargs, output):
      k = counts.get(name, 0)
      counts[name] = k + 1
      ins = [_tnp(t) for t in torch_leaves((args, kwargs))]
      calls.append(Call(name, k, type(mod).__name__, ins, [_tnp(t) for t in torch_leaves(output)], mod,
                        _clone(args), _clone(kwargs)))
    return hook

  try:
    for name, mod in module.named_modules():
      handles.append(mod.register_forward_hook(hook_for(name), with_kwargs=True))
    yield calls
  finally:
    for h in handles:
      h.remove()


def nnx_modules(module) -> dict[tuple, Any]:
  """``{path: submodule}`` of an nnx module, itself at ``()``."""
  from flax import nnx

  return {tuple(p): m for p, m in nnx.iter_modules(module)}


def nnx_dotted(path: tuple, modules: dict[tuple, Any]) -> str:
  """An nnx path as torch would name it: ``('layer1', 0, 'conv1')`` -> ``"layer1.0.conv1"``.

  ``nnx.Sequential`` keeps its children in ``layers``; torch's ``nn.Sequential`` names them
  ``0, 1, ...`` directly, so a ``layers`` step right under a Sequential is dropped.
  """
  from flax import nnx

  parts = []
  for i, p in enumerate(path):
    if p == "layers" and isinstance(modules.get(tuple(path[:i])), nnx.Sequential):
      continue
    parts.append(str(p))
  return ".".join(parts)


def _jnp_leaves(x: Any) -> tuple[list[np.ndarray], bool]:
  import jax

  out, traced = [], False
  for leaf in jax.tree_util.tree_leaves(x):
    if isinstance(leaf, jax.core.Tracer):
      traced = True
    elif isinstance(leaf, (jax.Array, np.ndarray)):
      out.append(np.asarray(leaf))
  return out, traced


@contextlib.contextmanager
def nnx_calls(module) -> Iterator[list[Call]]:
  """Record every submodule call of the nnx ``module`` while the block runs.

  Paths are dotted as :func:`nnx_dotted` gives them. Calls made under a JAX transformation (an
  ``nnx.jit`` or ``nnx.scan`` inside the model) hold tracers, not numbers: they are recorded with
  ``traced=True`` and no arrays.
  """
  modules = nnx_modules(module)
  by_id = {id(m): nnx_dotted(p, modules) for p, m in modules.items()}
  calls: list[Call] = []
  counts: dict[str, int] = {}
  active: set[int] = set()
  owners: dict[type, Any] = {}
  for m in modules.values():
    for klass in type(m).__mro__:
      if "__call__" in vars(klass):
        owners.setdefault(klass, vars(klass)["__call__"])
        break

  def wrap(original):
    def __call__(self, *args, **kwargs):
      name = by_id.get(id(self))
      if name is None or id(self) in active:  # not ours, or a super().__call__ of a wrapped call
        return original(self, *args, **kwargs)
      active.add(id(self))
      try:
        out = original(self, *args, **kwargs)
      finally:
        active.discard(id(self))
      k = counts.get(name, 0)
      counts[name] = k + 1
      ins, t_in = _jnp_leaves((args, kwargs))
      outs, t_out = _jnp_leaves(out)
      calls.append(Call(name, k, type(self).__name__, ins, outs, self, traced=t_in or t_out))
      return out

    __call__.__wrapped__ = original
    return __call__

  try:
    for klass, original in owners.items():
      setattr(klass, "__call__", wrap(original))
    yield calls
  finally:
    for klass, original in owners.items():
      setattr(klass, "__call__", original)
