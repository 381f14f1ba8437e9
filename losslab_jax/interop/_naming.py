"""Which leaf of a params pytree holds which torch parameter: names, the pairing, and its refusals.

torch numbers an optimizer's parameters 0, 1, 2, ... (param groups in order, each group's
``params`` list in order) and keys its per-parameter state by those numbers. A pairing of those
numbers with the leaves of a JAX params tree is only ever taken from a source that proves it:

1. a :class:`~losslab_jax.interop.torch.WeightMap` with the torch names of the optimizer's
   parameters (from the optimizer itself, matched by identity, or given);
2. ``param_names`` (leaf names, see :func:`leaf_names`), or the names torch >= 2.6 keeps in param
   groups built from ``model.named_parameters()``;
3. shapes, when every shape identifies its parameter (no two torch parameters with state share a
   shape, and each such shape occurs on exactly one leaf).

Anything else is refused, listing the parameters that could be confused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from losslab_jax.interop._util import to_numpy, to_tensor, torch_module
from losslab_jax.interop._weights import WeightMap, _tree_key


def path_name(path: Sequence[Any]) -> str:
  """A pytree key path joined with dots (``DictKey('fc'), DictKey('weight')`` -> ``"fc.weight"``)."""
  parts = []
  for k in path:
    if isinstance(k, jax.tree_util.DictKey):
      parts.append(str(k.key))
    elif isinstance(k, jax.tree_util.GetAttrKey):
      parts.append(k.name)
    elif isinstance(k, jax.tree_util.SequenceKey):
      parts.append(str(k.idx))
    elif isinstance(k, jax.tree_util.FlattenedIndexKey):
      parts.append(str(k.key))
    else:
      parts.append(str(k))
  return ".".join(parts)


def leaf_names(params: Any) -> list[str]:
  """The name of every leaf of ``params`` (its key path joined with dots), in ``jax.tree.leaves`` order.

  Examples:
    >>> leaf_names({"fc": {"weight": 0.0, "bias": 0.0}, "layers": [{"w": 0.0}]})
    ['fc.bias', 'fc.weight', 'layers.0.w']
  """
  return [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def _identity(a: np.ndarray) -> np.ndarray:
  return a


class Layout(NamedTuple):
  """Where each leaf of ``params`` sits in torch's parameter order, and its layout conversions."""

  names: list[str]              # leaf names, jax leaf order
  leaves: list[Any]
  treedef: Any
  position: list[int]           # position[j]: torch's parameter number of leaf j
  to_flax: list[Callable[[np.ndarray], np.ndarray]]    # per leaf: torch layout -> leaf layout
  to_torch: list[Callable[[np.ndarray], np.ndarray]]   # per leaf: leaf layout -> torch layout
  labels: list[str]             # per leaf: how messages name it ("torch parameter 3 ('fc.weight', leaf ...)")


def names_from_groups(groups: Sequence[Mapping[str, Any]]) -> list[str] | None:
  """The ``param_names`` torch >= 2.6 keeps in groups built from ``named_parameters()``, if all have them."""
  if groups and all("param_names" in g for g in groups):
    return [n for g in groups for n in g["param_names"]]
  return None


def _fmt(names: Sequence[str], k: int = 8) -> str:
  return ", ".join(repr(n) for n in names[:k]) + (", ..." if len(names) > k else "")


_HOW = ("pass param_names=[leaf name of torch parameter 0, 1, ...] (see torch_param_names), a weight_map from"
        " copy_weights, or build the torch optimizer from model.named_parameters()")


def layout(fn: str, params: Any, n_torch: int, *, param_names: Sequence[str] | None = None,
           group_names: Sequence[str] | None = None, weight_map: WeightMap | None = None,
           torch_shapes: Sequence[tuple[int, ...] | None] | None = None, free_unknown: bool = False) -> Layout:
  """Pair the leaves of ``params`` with torch's parameters ``0 .. n_torch - 1``, or refuse.

  Args:
    fn: the public function's name, for messages.
    params: the params pytree.
    n_torch: how many parameters the torch optimizer has.
    param_names: leaf name of each torch parameter (without a weight map), or torch name of each
      (with one).
    group_names: torch names kept in the optimizer's param groups (used when ``param_names`` is
      not given).
    weight_map: maps torch names to the leaves of an nnx param tree, with layouts.
    torch_shapes: torch layout shape of each torch parameter, ``None`` where unknown (a parameter
      torch keeps no state for): the pairing of last resort.
    free_unknown: the torch parameters of unknown shape hold nothing the caller reads or writes,
      so any pairing among them is equivalent (converting torch state into JAX state).
  """
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  names = [path_name(p) for p, _ in flat]
  leaves = [leaf for _, leaf in flat]
  ident = [_identity] * len(leaves)
  if weight_map is not None:
    return _by_weight_map(fn, flat, treedef, names, leaves, n_torch, weight_map,
                          param_names if param_names is not None else group_names)
  given = param_names if param_names is not None else group_names
  if given is not None:
    position = _by_names(fn, names, [str(n) for n in given], n_torch, from_groups=param_names is None)
    labels = [f"torch parameter {position[j]} ({names[j]!r})" for j in range(len(names))]
    return Layout(names, leaves, treedef, position, ident, ident, labels)
  if len(leaves) != n_torch:
    raise ValueError(f"{fn}: expected params with one leaf per torch parameter ({n_torch}), got {len(leaves)} leaves"
                     f" ({_fmt(names)}); pass only the optimized parameters, or {_HOW}")
  position = _by_shapes(fn, names, [tuple(np.shape(x)) for x in leaves], torch_shapes or [None] * n_torch,
                        free_unknown)
  labels = [f"torch parameter {position[j]} ({names[j]!r}, paired by its shape)" for j in range(len(names))]
  return Layout(names, leaves, treedef, position, ident, ident, labels)


def _by_names(fn: str, names: list[str], given: list[str], n_torch: int, from_groups: bool) -> list[int]:
  src = "the param_names kept in the torch param groups" if from_groups else "param_names"
  if len(given) != n_torch:
    raise ValueError(f"{fn}: expected {n_torch} param_names (one per torch parameter), got {len(given)}")
  if len(set(given)) != len(given):
    dup = sorted({n for n in given if given.count(n) > 1})
    raise ValueError(f"{fn}: expected distinct names in {src}, got {dup} more than once")
  index = {n: j for j, n in enumerate(names)}
  unknown = [n for n in given if n not in index]
  if unknown:
    raise ValueError(f"{fn}: expected every name in {src} to name a leaf of params, got {unknown} which do not;"
                     f" the leaves are {names}")
  unnamed = sorted(set(names) - set(given))
  if unnamed:
    raise ValueError(f"{fn}: expected every leaf of params to be one of the torch optimizer's parameters, got"
                     f" leaves {unnamed} that are not in {src}; pass only the optimized parameters")
  position = [0] * len(names)
  for i, n in enumerate(given):
    position[index[n]] = i
  return position


def _by_shapes(fn: str, names: list[str], shapes: list[tuple[int, ...]],
               torch_shapes: Sequence[tuple[int, ...] | None], free_unknown: bool) -> list[int]:
  """Pair leaves with torch parameters by shape, where every known shape is unique on both sides."""
  n = len(names)
  if n == 1:
    return [0]
  known = [(i, tuple(s)) for i, s in enumerate(torch_shapes) if s is not None]
  problems = []
  for i, s in known:
    same_torch = [k for k, t in known if t == s]
    same_leaf = [names[j] for j in range(n) if shapes[j] == s]
    if len(same_torch) > 1 or len(same_leaf) > 1:
      problems.append(f"torch parameters {same_torch} and leaves {same_leaf} all have shape {s}")
    elif not same_leaf:
      problems.append(f"torch parameter {i} (shape {s}) matches the shape of no leaf (leaf shapes:"
                      f" {dict(zip(names, shapes))})")
  if len(known) < n - 1 and not free_unknown:
    unknown = [i for i, s in enumerate(torch_shapes) if s is None]
    problems.append(f"torch parameters {unknown} cannot be told apart (torch holds no tensor of theirs)")
  if problems:
    raise ValueError(f"{fn}: cannot pair torch's parameters with the leaves of params without names, since the"
                     f" pairing would be a guess: {'; '.join(sorted(set(problems)))}; {_HOW}")
  position = [-1] * n
  for i, s in known:
    position[shapes.index(s)] = i
  rest = [i for i in range(n) if i not in {i for i, _ in known}]
  for j in range(n):
    if position[j] < 0:
      position[j] = rest.pop(0)
  return position


def _by_weight_map(fn: str, flat, treedef, names, leaves, n_torch: int, wm: WeightMap,
                   torch_names: Sequence[str] | None) -> Layout:
  if torch_names is None:
    raise ValueError(f"{fn}: with weight_map, expected the torch names of the optimizer's parameters in its order:"
                     " pass the torch optimizer itself (its parameters are matched by identity), param_names=[torch"
                     " names], or build it from model.named_parameters()")
  torch_names = [str(n) for n in torch_names]
  if len(torch_names) != n_torch:
    raise ValueError(f"{fn}: expected {n_torch} torch parameter names, got {len(torch_names)}")
  leaf_of: dict[str, int] = {}
  problems = []
  entries = []
  for j, (path, _) in enumerate(flat):
    key = _tree_key(path)
    e = wm._by_nnx.get(key)  # noqa: SLF001 - same package
    if e is None or e.kind != "parameter":
      problems.append(f"leaf {names[j]!r} is no parameter the weight map placed")
      entries.append(None)
      continue
    entries.append(e)
    leaf_of[e.source] = j
    leaf_of.setdefault(e.torch_name, j)
  unknown = [n for n in torch_names if n not in leaf_of]
  problems += [f"torch parameter {n!r} has no leaf in params" for n in unknown]
  if len(set(torch_names)) != len(torch_names):
    problems.append(f"torch names repeat: {sorted({n for n in torch_names if torch_names.count(n) > 1})}")
  covered = {leaf_of[n] for n in torch_names if n in leaf_of}
  problems += [f"leaf {names[j]!r} is not one of the optimizer's parameters" for j in range(len(names))
               if j not in covered and entries[j] is not None]
  if problems:
    raise ValueError(f"{fn}: cannot pair the optimizer's parameters with params through the weight map: "
                     + "; ".join(problems))
  position = [0] * len(names)
  for i, n in enumerate(torch_names):
    position[leaf_of[n]] = i
  to_flax = [e.placement.to_flax_layout for e in entries]
  to_torch = [e.placement.to_torch_layout for e in entries]
  labels = [f"torch parameter {position[j]} ({entries[j].torch_name!r} -> nnx {names[j]!r})"
            for j in range(len(names))]
  return Layout(names, leaves, treedef, position, to_flax, to_torch, labels)


# --- parameters -----------------------------------------------------------------------------------


def params_from_torch(named_parameters: Any, *, dtype: Any = None) -> dict[str, jax.Array]:
  """torch parameters as a flat dict ``{name: jax.Array}`` (copies, in torch's order).

  Args:
    named_parameters: ``model.named_parameters()``, a ``torch.nn.Module`` (its named parameters),
      ``model.state_dict()``, or any mapping / iterable of ``(name, tensor)``.
    dtype: cast every array to this dtype; by default each keeps its torch dtype (float64 needs
      ``jax_enable_x64``).

  Returns:
    ``{name: array}`` in torch layout. Its leaf names are torch's names, so ``param_names`` built
    from the same ``named_parameters`` (see :func:`torch_param_names`) address it directly. For a
    flax.nnx port use :func:`copy_weights` instead.

  Raises:
    ValueError: a name appears twice.
  """
  torch = torch_module()
  if isinstance(named_parameters, torch.nn.Module):
    named_parameters = named_parameters.named_parameters()
  items = named_parameters.items() if isinstance(named_parameters, Mapping) else named_parameters
  out: dict[str, jax.Array] = {}
  for name, t in items:
    if name in out:
      raise ValueError(f"params_from_torch: expected distinct parameter names, got {name!r} twice")
    a = to_numpy(t)
    out[name] = jnp.asarray(a, dtype=dtype if dtype is not None else a.dtype)
  return out


def params_to_torch(params: Any) -> dict[str, Any]:
  """The leaves of ``params`` as ``{leaf name: torch.Tensor}`` (copies), e.g. for ``model.load_state_dict``."""
  return {n: to_tensor(leaf) for n, leaf in zip(leaf_names(params), jax.tree.leaves(params))}


def torch_param_names(optimizer: Any, named_parameters: Any) -> list[str]:
  """The name of each of ``optimizer``'s parameters, in torch's order (the ``param_names`` argument).

  Args:
    optimizer: a torch optimizer.
    named_parameters: ``model.named_parameters()`` (or a module, or a mapping name -> parameter)
      covering every parameter of the optimizer.

  Raises:
    ValueError: an optimizer parameter is not among ``named_parameters``.
  """
  torch = torch_module()
  if isinstance(named_parameters, torch.nn.Module):
    named_parameters = named_parameters.named_parameters()
  items = named_parameters.items() if isinstance(named_parameters, Mapping) else named_parameters
  by_id = {id(t): name for name, t in items}
  names = []
  for g, group in enumerate(optimizer.param_groups):
    for k, p in enumerate(group["params"]):
      if id(p) not in by_id:
        raise ValueError(f"torch_param_names: expected every optimizer parameter among named_parameters, got"
                         f" param_groups[{g}]['params'][{k}] (shape {tuple(p.shape)}) without a name")
      names.append(by_id[id(p)])
  return names
