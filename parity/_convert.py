"""Conversions between numpy, JAX and torch (torch imported lazily)."""

from __future__ import annotations

from typing import Any

import numpy as np


def torch_dtype(dtype: str):
  import torch

  return {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}[dtype]


def to_torch(x: Any, requires_grad: bool = False):
  """numpy/JAX array (or scalar) -> torch tensor, copying; integers stay int64-compatible."""
  import torch

  a = np.asarray(x)
  t = torch.from_numpy(np.array(a, copy=True))
  if requires_grad:
    t.requires_grad_(True)
  return t


def to_numpy(x: Any) -> np.ndarray:
  """torch tensor / JAX array / scalar -> numpy array (detached)."""
  if hasattr(x, "detach"):
    x = x.detach().cpu()
    if str(x.dtype) == "torch.bfloat16":
      x = x.float()
    return x.numpy()
  return np.asarray(x)


def class_last_to_first(t, axis: int = -1):
  """torch tensor in losslab layout ``(N, *, C)`` -> torch layout ``(N, C, *)``."""
  if t.ndim <= 2:
    return t
  return t.movedim(axis, 1)


def tree_to_numpy(tree: Any) -> Any:
  import jax

  return jax.tree_util.tree_map(to_numpy, tree, is_leaf=lambda x: hasattr(x, "detach"))
