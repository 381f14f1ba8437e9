"""Weights across frameworks: copy a torch module's parameters and buffers into a flax.nnx module.

:func:`copy_weights` matches torch modules to nnx modules by path, moves each tensor into the
layout flax uses, and returns a :class:`WeightMap` that converts any per-parameter torch tensors
(gradients, optimizer moments) the same way and back. Public through ``ll.interop.torch``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Union, cast

import jax
import jax.numpy as jnp
import numpy as np

from losslab_jax.interop._util import to_numpy
from losslab_jax.interop._util import torch_module as _torch

NnxPath = tuple[Union[str, int], ...]


@dataclasses.dataclass(frozen=True)
class Placement:
  """Where one tensor of a torch module goes in the matched nnx module, and in which layout.

  The flax array is ``np.flip(np.transpose(torch_array, perm), flip)``: first the axes are
  permuted (``perm=None`` keeps them), then the flax axes listed in ``flip`` are reversed. Both
  steps are exact and invertible, so a round trip torch -> flax -> torch is bit for bit. For a
  layout that is not a permutation, give ``to_flax`` and ``to_torch`` (NumPy array in, NumPy
  array out, each the other's inverse) instead.

  Attributes:
    attr: the nnx variable's attribute name in the matched nnx module (``"kernel"``); dots walk
      into submodules and list items (``"attn.0.kernel"``).
    perm: axis permutation torch -> flax, as ``np.transpose`` takes it.
    flip: flax axes to reverse after the permutation (ConvTranspose's spatial axes).
    to_flax: custom conversion torch layout -> flax layout (overrides ``perm``/``flip``).
    to_torch: its inverse (required with ``to_flax``).

  Examples:
    >>> import numpy as np
    >>> p = Placement("kernel", perm=(1, 0))            # torch Linear weight (out, in) -> (in, out)
    >>> p.flax_shape((4, 3))
    (3, 4)
    >>> w = np.arange(12.0).reshape(4, 3)
    >>> bool(np.array_equal(p.to_torch_layout(p.to_flax_layout(w)), w))
    True
  """

  attr: str
  perm: tuple[int, ...] | None = None
  flip: tuple[int, ...] = ()
  to_flax: Callable[[np.ndarray], np.ndarray] | None = None
  to_torch: Callable[[np.ndarray], np.ndarray] | None = None

  def __post_init__(self):
    if (self.to_flax is None) != (self.to_torch is None):
      raise ValueError(f"Placement({self.attr!r}): expected both to_flax and to_torch, or neither")
    if self.perm is not None:
      object.__setattr__(self, "perm", tuple(int(p) for p in self.perm))
    object.__setattr__(self, "flip", tuple(int(a) for a in self.flip))

  def to_flax_layout(self, a: np.ndarray) -> np.ndarray:
    """A torch-layout array in flax layout."""
    a = np.asarray(a)
    if self.to_flax is not None:
      return np.asarray(self.to_flax(a))
    if self.perm is not None:
      a = np.transpose(a, self.perm)
    if self.flip:
      a = np.flip(a, self.flip)
    return np.ascontiguousarray(a)

  def to_torch_layout(self, a: np.ndarray) -> np.ndarray:
    """A flax-layout array in torch layout (the exact inverse of :meth:`to_flax_layout`)."""
    a = np.asarray(a)
    if self.to_torch is not None:
      return np.asarray(self.to_torch(a))
    if self.flip:
      a = np.flip(a, self.flip)
    if self.perm is not None:
      a = np.transpose(a, np.argsort(self.perm))
    return np.ascontiguousarray(a)

  def flax_shape(self, torch_shape: Iterable[int]) -> tuple[int, ...]:
    """The flax shape of a torch tensor of ``torch_shape``."""
    torch_shape = tuple(int(s) for s in torch_shape)
    if self.to_flax is not None:
      return tuple(self.to_flax(np.zeros(torch_shape, np.float32)).shape)
    if self.perm is None:
      return torch_shape
    if sorted(self.perm) != list(range(len(torch_shape))):
      raise ValueError(f"Placement({self.attr!r}): perm {self.perm} does not fit a tensor of rank {len(torch_shape)}")
    return tuple(torch_shape[p] for p in self.perm)


@dataclasses.dataclass(frozen=True)
class WeightEntry:
  """One torch tensor placed into one nnx variable.

  Attributes:
    torch_name: the tensor's ``state_dict`` name (``"layer1.0.conv1.weight"``).
    nnx_path: the nnx variable's path, e.g. ``("layer1", 0, "conv1", "kernel")``.
    kind: ``"parameter"`` or ``"buffer"`` on the torch side.
    variable_type: the nnx variable class name (``"Param"``, ``"BatchStat"``, ...).
    placement: the layout rule.
    torch_shape, flax_shape: the shapes on both sides.
    source: the canonical torch name of the tensor (differs from ``torch_name`` for a tied
      weight reached through a second module: ``named_parameters()`` lists it once).
  """

  torch_name: str
  nnx_path: NnxPath
  kind: str
  variable_type: str
  placement: Placement
  torch_shape: tuple[int, ...]
  flax_shape: tuple[int, ...]
  source: str


def _dotted(path: Iterable[Any]) -> str:
  return ".".join(str(p) for p in path)


def _tree_key(path: Sequence[Any]) -> NnxPath:
  """A pytree key path of an nnx State / nested dict as an nnx path (a Variable's ``.value`` dropped)."""
  out: list[Any] = []
  for k in path:
    if isinstance(k, jax.tree_util.DictKey):
      out.append(k.key)
    elif isinstance(k, jax.tree_util.SequenceKey):
      out.append(k.idx)
    elif isinstance(k, jax.tree_util.GetAttrKey):
      out.append(k.name)
    elif isinstance(k, jax.tree_util.FlattenedIndexKey):
      out.append(k.key)
    else:
      out.append(k)
  if out and out[-1] == "value" and path and isinstance(path[-1], jax.tree_util.GetAttrKey):
    out.pop()
  return tuple(out)


class WeightMap:
  """How torch tensors of one model map onto the variables of its nnx port (from :func:`copy_weights`).

  It converts *any* per-parameter torch tensors — weights, gradients, optimizer moments — into
  the nnx module's parameter tree (flax layouts) and back, bit for bit.

  Attributes:
    entries: every placed tensor (:class:`WeightEntry`), parameters and buffers, torch order.
    torch_names: torch parameter names in ``named_parameters()`` order (tied weights once).
    buffer_names: torch buffer names placed into nnx variables, ``named_buffers()`` order.
    ignored: ``(torch name, reason)`` of torch tensors deliberately not copied (BatchNorm's
      ``num_batches_tracked``: flax's BatchNorm has no counter; non-persistent buffers; modules
      renamed to ``None``).
    unplaced: with ``strict=False``, the problems :func:`copy_weights` would have raised (empty
      when strict).

  Examples:
    >>> import numpy as np, torch
    >>> from flax import nnx
    >>> t = torch.nn.Linear(3, 2)
    >>> wm = copy_weights(t, nnx.eval_shape(lambda: nnx.Linear(3, 2, rngs=nnx.Rngs(0))))
    >>> moment = {"weight": np.arange(6.0).reshape(2, 3), "bias": np.zeros(2)}   # torch layout (out, in)
    >>> tree = wm.tree_from_torch(moment)                                      # flax layout (in, out)
    >>> tree["kernel"][...].tolist()
    [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    >>> wm.tree_to_torch(tree)["weight"].tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
  """

  def __init__(self, entries: Iterable[WeightEntry], param_template: Any, torch_params: Mapping[str, Any],
               ignored: Iterable[tuple[str, str]] = (), unplaced: Iterable[str] = ()):
    self.entries: tuple[WeightEntry, ...] = tuple(entries)
    self._template = param_template
    self._by_torch = {e.torch_name: e for e in self.entries}
    self._by_nnx = {e.nnx_path: e for e in self.entries}
    self.torch_names: tuple[str, ...] = tuple(n for n in torch_params if n in self._by_torch)
    self.buffer_names: tuple[str, ...] = tuple(e.torch_name for e in self.entries if e.kind == "buffer")
    self.ignored: tuple[tuple[str, str], ...] = tuple(ignored)
    self.unplaced: tuple[str, ...] = tuple(unplaced)
    self._param_ids = {id(t): n for n, t in torch_params.items()}
    self._torch_params = tuple(torch_params.values())      # keeps the ids above valid

  def __repr__(self) -> str:
    return (f"WeightMap({len(self.torch_names)} parameters, {len(self.buffer_names)} buffers,"
            f" {len(self.ignored)} ignored)")

  # --- names ---------------------------------------------------------------------------------------

  def nnx_path(self, torch_name: str) -> NnxPath:
    """The nnx variable path of a torch tensor name.

    ``"layer1.0.conv1.weight"`` -> ``("layer1", 0, "conv1", "kernel")``.
    """
    try:
      return self._by_torch[torch_name].nnx_path
    except KeyError:
      raise KeyError(f"WeightMap.nnx_path: {torch_name!r} is not a placed torch tensor") from None

  def torch_name(self, nnx_path: NnxPath | str) -> str:
    """The torch tensor name of an nnx variable path (a tuple, or its dotted string)."""
    if isinstance(nnx_path, str):
      hits = [e for e in self.entries if _dotted(e.nnx_path) == nnx_path]
      if hits:
        return hits[0].torch_name
    else:
      e = self._by_nnx.get(tuple(nnx_path))
      if e is not None:
        return e.torch_name
    raise KeyError(f"WeightMap.torch_name: no torch tensor was placed at nnx path {nnx_path!r}")

  def param_names_of(self, optimizer: Any) -> list[str]:
    """Torch names of ``optimizer``'s parameters in the optimizer's own order (matched by identity).

    Raises:
      ValueError: an optimizer parameter is not a parameter of the copied torch module.
    """
    names = []
    for g, group in enumerate(optimizer.param_groups):
      for k, p in enumerate(group["params"]):
        n = self._param_ids.get(id(p))
        if n is None:
          raise ValueError(f"WeightMap.param_names_of: expected every optimizer parameter to belong to the copied"
                           f" torch module, got param_groups[{g}]['params'][{k}] (shape {tuple(p.shape)})")
        names.append(n)
    return names

  # --- layouts -------------------------------------------------------------------------------------

  def to_flax(self, torch_name: str, tensor: Any, *, dtype: Any = None) -> jax.Array:
    """One torch-layout tensor (of the parameter or buffer ``torch_name``) in flax layout."""
    e = self._entry(torch_name, "to_flax")
    a = to_numpy(tensor)
    if a.shape != e.torch_shape:
      raise ValueError(f"WeightMap.to_flax: expected {torch_name!r} of shape {e.torch_shape}, got {a.shape}")
    return jnp.asarray(e.placement.to_flax_layout(a), dtype=dtype)

  def to_torch(self, name: str | NnxPath, array: Any) -> np.ndarray:
    """One flax-layout array (of the torch tensor ``name`` or the nnx path) in torch layout."""
    e = self._by_nnx.get(tuple(name)) if not isinstance(name, str) else self._by_torch.get(name)
    if e is None:
      raise KeyError(f"WeightMap.to_torch: {name!r} is neither a placed torch name nor an nnx path")
    a = np.asarray(array)
    if a.shape != e.flax_shape:
      raise ValueError(f"WeightMap.to_torch: expected {_dotted(e.nnx_path)!r} of shape {e.flax_shape}, got {a.shape}")
    return e.placement.to_torch_layout(a)

  def _entry(self, torch_name: str, fn: str) -> WeightEntry:
    e = self._by_torch.get(torch_name)
    if e is None:
      raise KeyError(f"WeightMap.{fn}: {torch_name!r} is not a placed torch tensor")
    return e

  def tree_from_torch(self, tensors: Mapping[str, Any], *, dtype: Any = None) -> Any:
    """Per-parameter torch tensors as a tree shaped like ``nnx.state(nnx_module, nnx.Param)``.

    Args:
      tensors: ``{torch parameter name: tensor or array}`` in torch layout, one for each name in
        :attr:`torch_names` (e.g. ``dict(model.named_parameters())``, gradients, or one moment
        of a torch optimizer's state).
      dtype: cast every leaf; by default each keeps its own dtype.

    Returns:
      An ``nnx.State`` with the structure of ``nnx.state(nnx_module, nnx.Param)`` (its leaves
      ``nnx.Param`` variables holding ``jax.Array`` values in flax layout).

    Raises:
      ValueError: a name is missing or unknown, or a tensor has the wrong shape (all listed).
    """
    missing = [n for n in self.torch_names if n not in tensors]
    unknown = [n for n in tensors if n not in self._by_torch or self._by_torch[n].kind != "parameter"]
    problems = [f"missing tensor for torch parameter {n!r}" for n in missing]
    problems += [f"{n!r} is not a placed torch parameter" for n in unknown]
    arrays: dict[str, np.ndarray] = {}
    for n in self.torch_names:
      if n in tensors:
        a = to_numpy(tensors[n])
        e = self._by_torch[n]
        if a.shape != e.torch_shape:
          problems.append(f"{n!r}: expected shape {e.torch_shape}, got {a.shape}")
        arrays[n] = a
    if problems:
      raise ValueError("WeightMap.tree_from_torch: " + "; ".join(problems))

    def leaf(path, _):
      key = _tree_key(path)
      e = self._by_nnx.get(key)
      if e is None or e.source not in arrays:
        raise ValueError(f"WeightMap.tree_from_torch: nnx parameter {_dotted(key)!r} is filled by no torch"
                         " parameter (copy_weights with strict=False left it)")
      return jnp.asarray(e.placement.to_flax_layout(arrays[e.source]), dtype=dtype)

    return jax.tree_util.tree_map_with_path(leaf, self._template)

  def tree_to_torch(self, tree: Any) -> dict[str, np.ndarray]:
    """The inverse of :meth:`tree_from_torch`: ``{torch parameter name: numpy array in torch layout}``.

    Args:
      tree: a tree with the paths of ``nnx.state(nnx_module, nnx.Param)`` (an ``nnx.State``, its
        ``to_pure_dict()``, or e.g. one moment of an optax state built on it).

    Returns:
      A dict in :attr:`torch_names` order; exact (bit for bit) inverse of :meth:`tree_from_torch`.

    Raises:
      ValueError: a leaf's path is no placed nnx parameter, a parameter is missing, or a shape
        differs (all listed).
    """
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    found: dict[str, np.ndarray] = {}
    problems = []
    for path, x in flat:
      key = _tree_key(path)
      e = self._by_nnx.get(key)
      if e is None or e.kind != "parameter":
        problems.append(f"leaf {_dotted(key)!r} is no placed nnx parameter")
        continue
      a = np.asarray(x)
      if a.shape != e.flax_shape:
        problems.append(f"{_dotted(key)!r}: expected shape {e.flax_shape}, got {a.shape}")
        continue
      found.setdefault(e.source, e.placement.to_torch_layout(a))
    problems += [f"no leaf for torch parameter {n!r} (nnx {_dotted(self.nnx_path(n))!r})"
                 for n in self.torch_names if n not in found]
    if problems:
      raise ValueError("WeightMap.tree_to_torch: " + "; ".join(problems))
    return {n: found[n] for n in self.torch_names}


# --- layout rules ---------------------------------------------------------------------------------

Rule = Union[Mapping[str, Union[Placement, str, None]], Callable[[Any, Any], Mapping[str, Union[Placement, str, None]]]]

_IGNORE_NBT = ("torch's batch counter; flax BatchNorm has none (it matters to torch only with momentum=None,"
               " a cumulative average flax cannot express)")


def default_layout(torch_mod: Any, nnx_mod: Any) -> Mapping[str, Placement | str | None] | None:
  """The layout rule of a standard torch layer (``None`` for a module type without one).

  ``{local torch tensor name: Placement, or None for "deliberately not copied"}``:

  ==========================  =======================================================================
  torch                       nnx
  ==========================  =======================================================================
  Linear                      ``weight (out, in)`` -> ``kernel (in, out)``; ``bias``
  Conv1d/2d/3d                ``weight (O, I/g, *k)`` -> ``kernel (*k, I/g, O)``; ``bias``
  ConvTranspose1d/2d/3d       ``weight (I, O, *k)`` -> ``kernel (*k, I, O)`` spatially flipped (flax's
                              default ``transpose_kernel=False``), or ``(*k, O, I)`` unflipped with
                              ``transpose_kernel=True``; ``bias``; ``groups > 1`` is refused
  BatchNorm1d/2d/3d, Sync     ``weight`` -> ``scale``, ``bias``, ``running_mean`` -> ``mean``,
                              ``running_var`` -> ``var``; ``num_batches_tracked`` ignored
  LayerNorm, GroupNorm,       ``weight`` -> ``scale``, ``bias``
  RMSNorm
  Embedding                   ``weight`` -> ``embedding``
  ==========================  =======================================================================

  Examples:
    >>> import torch
    >>> default_layout(torch.nn.Conv2d(1, 2, 3), None)["weight"].perm       # (O, I, H, W) -> HWIO
    (2, 3, 1, 0)
  """
  torch = _torch()
  nn = torch.nn
  if isinstance(torch_mod, nn.Linear):
    return {"weight": Placement("kernel", perm=(1, 0)), "bias": "bias"}
  convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
  if isinstance(torch_mod, convs):
    n = torch_mod.weight.dim() - 2
    return {"weight": Placement("kernel", perm=(*range(2, n + 2), 1, 0)), "bias": "bias"}
  if isinstance(torch_mod, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
    if torch_mod.groups != 1:
      raise _RuleError(f"{type(torch_mod).__name__} with groups={torch_mod.groups}: flax's ConvTranspose has no"
                       " feature groups; give a rule")
    n = torch_mod.weight.dim() - 2
    if getattr(nnx_mod, "transpose_kernel", False):
      return {"weight": Placement("kernel", perm=(*range(2, n + 2), 1, 0)), "bias": "bias"}
    return {"weight": Placement("kernel", perm=(*range(2, n + 2), 0, 1), flip=tuple(range(n))), "bias": "bias"}
  if isinstance(torch_mod, nn.modules.batchnorm._BatchNorm):  # noqa: SLF001 - the BatchNorm family's base
    return {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var",
            "num_batches_tracked": None}
  norms = tuple(c for c in (nn.LayerNorm, nn.GroupNorm, getattr(nn, "RMSNorm", None)) if c is not None)
  if isinstance(torch_mod, norms):
    return {"weight": "scale", "bias": "bias"}
  if isinstance(torch_mod, nn.Embedding):
    return {"weight": "embedding"}
  return None


class _RuleError(Exception):
  """A rule cannot place this module (the message joins copy_weights' list of problems)."""


def _as_placement(v: Placement | str | None) -> Placement | None:
  if v is None or isinstance(v, Placement):
    return v
  if isinstance(v, str):
    return Placement(v)
  raise TypeError(f"copy_weights: expected a rule to give a Placement, an attribute name or None, got {v!r}")


def _find_rule(name: str, tm: Any, nm: Any, rules: Mapping[Any, Rule] | None) -> tuple[Mapping | None, str]:
  for key, rule in (rules or {}).items():
    hit = isinstance(key, str) and fnmatch.fnmatchcase(name, key) or isinstance(key, type) and isinstance(tm, key)
    if hit:
      table = rule(tm, nm) if callable(rule) else rule
      return table, f"rules[{key!r}]"
  return default_layout(tm, nm), "default rule"


def _rename(name: str, rename: Any, used: set) -> str | None:
  """The nnx module path (dotted) of torch module ``name``; None: skip the module."""
  if rename is None:
    return name
  if callable(rename):
    out: Any = rename(name)
    return out
  best = None
  for k in rename:
    if k == "" or name == k or name.startswith(k + "."):
      if best is None or len(k) > len(best):
        best = k
  if best is None:
    return name
  used.add(best)
  target = rename[best]
  if target is None:
    return None
  rest = name[len(best):].lstrip(".") if best else name
  return ".".join(p for p in (target, rest) if p)


def _walk(nm: Any, attr: str) -> tuple[Any, NnxPath]:
  obj, path = nm, []
  for part in attr.split("."):
    key: Any = int(part) if part.isdigit() else part
    try:
      obj = obj[key] if isinstance(key, int) else getattr(obj, key)
    except (AttributeError, IndexError, KeyError, TypeError):
      return None, ()
    path.append(key)
  return obj, tuple(path)


def copy_weights(torch_module: Any, nnx_module: Any, *, rename: Any = None, rules: Mapping[Any, Rule] | None = None,
                 strict: bool = True, dtype: Any = None) -> WeightMap:
  """Copy every parameter and buffer of a torch module into its flax.nnx port, in place.

  Modules are matched by path: torch's ``layer1.0.conv1`` is the nnx module at
  ``("layer1", 0, "conv1")`` (attributes, ``nnx.List``/``nnx.Dict``/list/dict items). Each torch
  module with tensors of its own is placed by a rule (:func:`default_layout` for the standard
  layers, ``rules=`` for others), which says which nnx variable receives each tensor and how its
  axes move. Everything is checked before anything is written, and every problem — torch modules
  without an nnx counterpart, tensors no rule places, shape mismatches, nnx ``Param``/
  ``BatchStat`` variables no torch tensor fills — is reported in ONE error.

  .. math::
     W^{\\text{flax}} = \\operatorname{flip}_F\\big(\\operatorname{transpose}_P(W^{\\text{torch}})\\big)

  with the permutation ``P`` and flipped axes ``F`` of each :class:`Placement` (exact, so the
  returned map round-trips bit for bit).

  Args:
    torch_module: a ``torch.nn.Module``.
    nnx_module: the ``flax.nnx.Module`` port (changed in place).
    rename: torch module name (prefix) -> nnx module path (dotted, ``""`` for the root), or
      ``None`` to leave that torch module out (recorded in ``ignored``); or a callable
      ``torch_module_name -> nnx dotted path or None``. A mapping key matching no torch module
      is reported.
    rules: ``{torch module type or fnmatch pattern on the torch module name: rule}``, tried in
      order before the default rules. A rule is a mapping ``{local tensor name: Placement | nnx
      attribute name | None}`` or a callable ``(torch_module, nnx_module) -> such a mapping``;
      ``None`` leaves that tensor out (recorded in ``ignored``).
    strict: with ``False``, unmatched names are recorded in ``WeightMap.unplaced`` instead of
      raising (shape mismatches still raise); what can be placed is copied.
    dtype: cast the copied values; by default each keeps its torch dtype (float64 needs
      ``jax_enable_x64``).

  Returns:
    A :class:`WeightMap`.

  Raises:
    ValueError: what cannot be placed (every problem, one per line).

  Notes:
    Torch twin: ``module.load_state_dict(torch_module.state_dict())`` across frameworks.
    The nnx module may be abstract (``nnx.eval_shape(lambda: Model(...))``: no initializer runs);
    with ``strict=True`` every ``Param``/``BatchStat`` is then filled. Values keep torch's dtype
    (or ``dtype``); a module that fixes its compute dtype at construction (``nnx.Embed``: ``dtype``
    defaults to ``param_dtype``) keeps computing in it, so build the port in torch's dtype.
    BatchNorm's ``num_batches_tracked`` is not copied (``WeightMap.ignored`` says why); its
    ``running_var`` is copied as it is (torch keeps the *unbiased* batch variance there, flax
    the biased one: training continued in flax updates it differently, evaluation agrees).

  Examples:
    >>> import torch
    >>> from flax import nnx
    >>> t = torch.nn.Sequential(torch.nn.Linear(3, 2))
    >>> m = nnx.Sequential(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
    >>> wm = copy_weights(t, m)
    >>> wm.torch_names, wm.nnx_path("0.weight")
    (('0.weight', '0.bias'), ('layers', 0, 'kernel'))
    >>> bool((m.layers[0].kernel[...] == t[0].weight.detach().numpy().T).all())
    True
  """
  torch = _torch()
  from flax import nnx

  fn = "copy_weights"
  graph = [(tuple(p), m) for p, m in nnx.iter_graph(nnx_module)]
  nnx_modules = {_dotted(p): m for p, m in graph if isinstance(m, nnx.Module)}
  nnx_paths = {_dotted(p): p for p, m in graph if isinstance(m, nnx.Module)}
  # torch.nn.Sequential holds its layers directly; nnx.Sequential under .layers: try both.
  both_sequential = isinstance(nnx_module, nnx.Sequential) and isinstance(torch_module, torch.nn.Sequential)
  torch_params = dict(torch_module.named_parameters())
  st = _Placing(_canonical_names(torch_module, torch_params))
  for mname, tm in torch_module.named_modules(remove_duplicate=False):
    own = _own_tensors(mname, tm, st.ignored)
    if not own:
      continue
    target = _rename(mname, rename, st.used_keys)
    if target is None:
      st.ignored += [(_full(mname, k), "rename maps its module to None") for k, _, _ in own]
      continue
    nm = nnx_modules.get(target)
    if nm is None and both_sequential:
      target = _dotted(["layers", target]) if target else "layers"
      nm = nnx_modules.get(target)
    _place_module(st, mname, tm, own, target, nm, nnx_paths, rules)
  _report_unfilled(st, rename, graph)
  if st.hard or (strict and st.problems):
    shown = st.hard + st.problems if strict else st.hard
    raise ValueError(f"{fn}: cannot place {len(shown)} item(s):\n  " + "\n  ".join(shown))
  _write(st.plan, dtype)
  template = nnx.state(nnx_module, nnx.Param)
  return WeightMap([e for e, _, _ in st.plan], template, torch_params, st.ignored, st.problems)


@dataclasses.dataclass
class _Placing:
  """What :func:`copy_weights` found so far: the plan to write and every problem (``hard``: raised even when
  not strict)."""

  canonical: dict[int, str]                 # id(tensor) -> its first torch name (shared tensors)
  problems: list[str] = dataclasses.field(default_factory=list)
  hard: list[str] = dataclasses.field(default_factory=list)
  ignored: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  plan: list[tuple[WeightEntry, Any, np.ndarray]] = dataclasses.field(default_factory=list)
  used_keys: set = dataclasses.field(default_factory=set)
  filled: set = dataclasses.field(default_factory=set)


def _full(mname: str, k: str) -> str:
  """The torch name of tensor ``k`` of module ``mname``."""
  return f"{mname}.{k}" if mname else k


def _canonical_names(torch_module: Any, torch_params: Mapping[str, Any]) -> dict[int, str]:
  """id(tensor) -> the name torch's ``named_parameters``/``named_buffers`` gives it (first of tied names)."""
  canonical = {id(t): n for n, t in torch_params.items()}
  canonical.update({id(t): n for n, t in torch_module.named_buffers() if id(t) not in canonical})
  return canonical


def _own_tensors(mname: str, tm: Any, ignored: list[tuple[str, str]]) -> list[tuple[str, Any, str]]:
  """``(local name, tensor, "parameter" | "buffer")`` of module ``tm``'s own tensors; non-persistent buffers
  go to ``ignored``."""
  own = [(k, v, "parameter") for k, v in tm._parameters.items() if v is not None]  # noqa: SLF001
  non_persistent = getattr(tm, "_non_persistent_buffers_set", set())
  for k, v in tm._buffers.items():  # noqa: SLF001
    if v is None:
      continue
    if k in non_persistent:
      ignored.append((_dotted([p for p in (mname, k) if p]), "non-persistent buffer (not in state_dict)"))
    else:
      own.append((k, v, "buffer"))
  return own


def _place_module(st: _Placing, mname: str, tm: Any, own: Sequence[tuple[str, Any, str]], target: str, nm: Any,
                  nnx_paths: Mapping[str, tuple[Any, ...]], rules: Mapping[Any, Rule] | None) -> None:
  """Plan the copy of torch module ``mname``'s tensors into nnx module ``nm`` (at ``target``) by its rule."""
  desc = ", ".join(f"{_full(mname, k)} {tuple(v.shape)}" for k, v, _ in own)
  if nm is None:
    st.problems.append(f"torch module {mname or '<root>'!r} ({type(tm).__name__}: {desc}) has no nnx module at"
                       f" {target or '<root>'!r}")
    return
  try:
    table, origin = _find_rule(mname, tm, nm, rules)
  except _RuleError as exc:
    st.problems.append(f"torch module {mname!r}: {exc}")
    return
  if table is None:
    st.problems.append(f"torch module {mname or '<root>'!r} ({type(tm).__name__}: {desc}) has no layout rule;"
                       " give rules={<type or name pattern>: {...}}")
    return
  base = nnx_paths[target]
  for k, v, kind in own:
    tname = _full(mname, k)
    if k not in table:
      st.problems.append(f"torch {tname!r} {tuple(v.shape)}: the {origin} for {type(tm).__name__} does not place"
                         f" {k!r}")
      continue
    pl = _as_placement(table[k])
    if pl is None:
      st.ignored.append((tname, _IGNORE_NBT if k == "num_batches_tracked" else f"{origin} leaves it out"))
      continue
    _place_tensor(st, tname, v, kind, pl, nm, base)


def _place_tensor(st: _Placing, tname: str, v: Any, kind: str, pl: Placement, nm: Any, base: tuple[Any, ...]) -> None:
  """Plan the copy of torch tensor ``tname`` into the variable ``pl`` names in ``nm``, or say why it cannot."""
  from flax import nnx

  var, sub = _walk(nm, pl.attr)
  path = (*base, *sub)
  if not isinstance(var, nnx.Variable):
    st.hard.append(f"torch {tname!r} {tuple(v.shape)} -> nnx {_dotted(base + (pl.attr,))!r}: the nnx"
                   f" {type(nm).__name__} has no variable {pl.attr!r}")
    return
  tshape = tuple(v.shape)
  try:
    fshape = pl.flax_shape(tshape)
  except ValueError as exc:
    st.hard.append(f"torch {tname!r}: {exc}")
    return
  vshape = tuple(var.get_value().shape)
  if fshape != vshape:
    st.filled.add(path)                     # reported here; not again as "receives no torch tensor"
    st.hard.append(f"torch {tname!r} {tshape} -> flax layout {fshape}, but nnx {_dotted(path)!r} has shape"
                   f" {vshape}")
    return
  source = st.canonical.get(id(v), tname)
  entry = WeightEntry(tname, cast(NnxPath, path), kind, type(var).__name__, pl, tshape, fshape, source)
  st.plan.append((entry, var, to_numpy(v)))
  st.filled.add(path)


def _report_unfilled(st: _Placing, rename: Any, graph: Sequence[tuple[Any, Any]]) -> None:
  """Problems for rename keys no torch module used and for nnx Param/BatchStat variables no tensor fills."""
  from flax import nnx

  if isinstance(rename, Mapping):
    st.problems += [f"rename key {k!r} matches no torch module" for k in rename if k not in st.used_keys]
  for path, var in graph:
    if isinstance(var, (nnx.Param, nnx.BatchStat)) and path not in st.filled:
      st.problems.append(f"nnx {type(var).__name__} {_dotted(path)!r} {tuple(var.get_value().shape)} receives no"
                         " torch tensor")


def _write(plan: Sequence[tuple[WeightEntry, Any, np.ndarray]], dtype: Any) -> None:
  """Set each planned nnx variable to its torch value in flax layout, on the variable's sharding."""
  for entry, var, a in plan:
    old = var.get_value()
    new = jnp.asarray(entry.placement.to_flax_layout(a), dtype=dtype)
    sharding = getattr(old, "sharding", None)
    var.set_value(jax.device_put(new, sharding) if sharding is not None else new)
