"""Small shared helpers of ``ll.interop.torch``: the lazy torch import and tensor <-> array copies."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np


def torch_module():
  """``import torch``, lazily (losslab_jax never imports torch at import time)."""
  try:
    import torch
  except ImportError as exc:  # pragma: no cover - torch is a test dependency
    raise ImportError("losslab_jax.interop.torch needs PyTorch: pip install torch") from exc
  return torch


def num(x: Any) -> float:
  """A Python float from a number or a 0-d tensor/array (torch keeps some hyperparameters as tensors)."""
  return float(x.item()) if hasattr(x, "item") else float(x)


def plain(x: Any) -> Any:
  """A torch hyperparameter as a plain Python value: tensors -> float, tuples/lists element-wise."""
  if isinstance(x, bool) or x is None or isinstance(x, str):
    return x
  if isinstance(x, (tuple, list)):
    return tuple(plain(v) for v in x)
  if hasattr(x, "item") or isinstance(x, (int, float)):
    return x if isinstance(x, int) else num(x)
  return x


def to_numpy(t: Any) -> np.ndarray:
  """A torch tensor (or anything array-like) as a NumPy array copy; bf16 through float32."""
  torch = torch_module()
  if isinstance(t, torch.Tensor):
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
      t = t.float()
    return t.numpy().copy()                       # never alias torch's memory (it keeps changing)
  return np.array(t, copy=True)


def to_tensor(x: Any) -> Any:
  """A copy of an array as a torch tensor (bf16 kept)."""
  torch = torch_module()
  a = np.asarray(x)
  if a.dtype == jnp.bfloat16:
    return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
  return torch.from_numpy(np.array(a, copy=True))


def scalar_dtype():
  """torch's ``_get_scalar_dtype()``: the dtype of ``step``, ``mu_product``, ``eta``, ``mu``."""
  torch = torch_module()
  return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
