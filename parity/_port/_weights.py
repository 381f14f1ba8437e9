"""The weight map parity's comparisons use: ``ll.interop.torch.copy_weights`` and its ``WeightMap``.

The comparisons need four things from a weight map (the protocol :class:`WeightMapLike`):
``torch_names`` (parameter names in ``named_parameters()`` order), ``nnx_path(name)`` (also for
buffers), ``tree_to_torch(tree)`` (an nnx ``Param``-state-shaped tree -> ``{torch name: array in
torch layout}``) and ``tree_from_torch(tensors)``; ``buffer_names`` and ``param_names_of(optimizer)``
are used when present. ``ll.interop.torch.WeightMap`` is the implementation; any object with
these members (a map for layers interop does not know) works too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np


class WeightMapLike(Protocol):
  torch_names: tuple[str, ...]

  def nnx_path(self, torch_name: str) -> tuple: ...

  def tree_to_torch(self, tree: Any) -> dict[str, np.ndarray]: ...

  def tree_from_torch(self, tensors: Mapping[str, Any], *, dtype: Any = None) -> Any: ...


def copy_weights(torch_module: Any, nnx_module: Any, **kwargs: Any) -> WeightMapLike:
  """``ll.interop.torch.copy_weights`` (imported when first called: torch and interop stay lazy)."""
  from losslab_jax.interop.torch import copy_weights as interop_copy_weights

  return interop_copy_weights(torch_module, nnx_module, **kwargs)
