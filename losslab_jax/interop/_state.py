"""torch optimizer ``state_dict()`` <-> losslab_jax optimizer state (and into ``flax.nnx.Optimizer``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from losslab_jax import optim as _optim
from losslab_jax.interop._naming import Layout, layout, names_from_groups
from losslab_jax.interop._translate import from_torch_optimizer, last_epoch, supported_optimizers, twin_of
from losslab_jax.interop._util import num, scalar_dtype, to_numpy, to_tensor, torch_module
from losslab_jax.interop._weights import WeightMap, copy_weights  # noqa: F401 - copy_weights: doctests


def _twins_by_state() -> dict[type, Any]:
  """state type -> twin (the first registered: Adam and AdamW share AdamState and every fact used here)."""
  out: dict[type, Any] = {}
  for t in _optim.torch_twins().values():
    out.setdefault(t.state_type, t)
  return out


def _is_off(value: Any) -> bool:
  """A state field switched off by a flag holds ``()``."""
  return isinstance(value, tuple) and len(value) == 0


def _find_states(tree: Any) -> list[tuple[str, Any]]:
  """``(key path string, state)`` of every optimizer / lr-counter state inside an optax state."""
  known = (*_twins_by_state(), _optim.ScaleByLrState)
  found: list[tuple[str, Any]] = []

  def visit(path, x):
    if isinstance(x, known):
      found.append((jax.tree_util.keystr(path), x))
    return x

  jax.tree_util.tree_map_with_path(visit, tree, is_leaf=lambda x: isinstance(x, known))
  return found


def _placeholder(field_leaf: Any, param_leaf: Any) -> bool:
  """An empty stand-in where torch keeps no tensor for this parameter (Adafactor's unused factors)."""
  return np.size(field_leaf) == 0 and np.size(param_leaf) != 0


def _unbox(tree: Any) -> Any:
  """``tree`` with every flax.nnx Variable (Param, OptVariable, ...) replaced by its value."""
  try:
    from flax import nnx
  except ImportError:  # pragma: no cover - flax is a dependency
    return tree
  is_var = lambda x: isinstance(x, nnx.Variable)  # noqa: E731
  return jax.tree.map(lambda v: v.get_value() if is_var(v) else v, tree, is_leaf=is_var)


def _scalar_fields(twin: Any) -> frozenset:
  return frozenset({"step", *twin.scalar_fields})


def _tree_fields(state: Any, twin: Any) -> list[str]:
  scal = _scalar_fields(twin)
  return [f for f in state._fields if f not in scal and not _is_off(getattr(state, f))]


def _field_leaves(fn: str, state: Any, field: str, treedef: Any) -> list[Any]:
  try:
    return treedef.flatten_up_to(getattr(state, field))
  except (ValueError, TypeError) as exc:
    raise ValueError(f"{fn}: expected the optimizer state's {type(state).__name__}.{field} to have the params'"
                     f" structure {treedef}; was the transformation initialized with other params? ({exc})") from None


def _covered(fn: str, state: Any, twin: Any, treedef: Any, n_leaves: int) -> list[int] | None:
  """Leaf indices this optimizer state holds (not masked out by param_groups); None if it holds no tree."""
  fields = _tree_fields(state, twin)
  if not fields:
    return None
  leaves = _field_leaves(fn, state, fields[0], treedef)
  return [j for j in range(n_leaves) if not isinstance(leaves[j], optax.MaskedNode)]


def _nearest(path: str, candidates: Sequence[str]) -> str | None:
  """The candidate path sharing the longest prefix with ``path`` (a chain's counter -> its optimizer)."""
  best, best_len = None, -1
  for c in candidates:
    n = 0
    for a, b in zip(path, c):
      if a != b:
        break
      n += 1
    if n > best_len:
      best, best_len = c, n
  return best


def _state_dict_of(fn: str, state_dict: Any) -> tuple[Mapping[str, Any], Any]:
  """(state_dict, the torch optimizer or None)."""
  optimizer = None
  if not isinstance(state_dict, Mapping) and hasattr(state_dict, "state_dict"):
    optimizer, state_dict = state_dict, state_dict.state_dict()
  if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
    raise ValueError(f"{fn}: expected a torch optimizer state_dict() (a dict with 'state' and 'param_groups'),"
                     f" got {type(state_dict).__name__}")
  return state_dict, optimizer


def _like(fn: str, value: Any, template: Any, what: str, convert: Any) -> jax.Array:
  """``value`` (torch layout) in the leaf's layout, with ``template``'s shape check, dtype and sharding."""
  a = to_numpy(value)
  try:
    a = convert(a)
  except ValueError as exc:
    raise ValueError(f"{fn}: {what} of shape {a.shape} does not fit the parameter's layout ({exc})") from None
  if a.shape != tuple(np.shape(template)):
    raise ValueError(f"{fn}: expected {what} of shape {tuple(np.shape(template))} (the params leaf), got shape"
                     f" {a.shape}")
  a = a.astype(template.dtype)
  sharding = getattr(template, "sharding", None)
  return jax.device_put(a, sharding) if sharding is not None else jnp.asarray(a)


def _order(fn: str, params: Any, sd: Mapping[str, Any], optimizer: Any, param_names: Any, weight_map: Any,
           torch_shapes: Any, free_unknown: bool) -> Layout:
  n = sum(len(g["params"]) for g in sd["param_groups"])
  names = param_names
  if names is None and weight_map is not None and optimizer is not None:
    names = weight_map.param_names_of(optimizer)
  return layout(fn, params, n, param_names=names, group_names=names_from_groups(sd["param_groups"]),
                weight_map=weight_map, torch_shapes=torch_shapes, free_unknown=free_unknown)


def optimizer_state_from_torch(tx: optax.GradientTransformation, state_dict: Any, params: Any, *,
                               param_names: Sequence[str] | None = None, scheduler: Any = None,
                               step_count: int | None = None, weight_map: WeightMap | None = None) -> optax.OptState:
  """Convert a torch optimizer's ``state_dict()`` into ``tx``'s state for ``params``.

  ``tx.init(params)`` gives the structure; every optimizer state in it (``AdamState``,
  ``SGDState``, ...; inside chains and param groups too) takes torch's per-parameter tensors,
  matched by name (``exp_avg``, ``momentum_buffer``, ...) and by parameter (see the module
  docstring: never by a guessed order). With ``weight_map`` each tensor is moved into its
  parameter's flax layout, so moments travel with their weights. Parameters torch has no state for
  yet keep the initial state, which is what torch creates at its first step. Every update counter
  of a group (the optimizer's ``step`` and the lr counter of its chain) is set to torch's step
  count, so bias corrections and schedules continue where torch stopped. Other states in ``tx``
  (clipping, plateau, ...) keep their initial values.

  Args:
    tx: the transformation, usually from :func:`from_torch_optimizer` on the same optimizer.
    state_dict: ``optimizer.state_dict()``, or the optimizer itself (then, with ``weight_map``,
      its parameters are named by identity).
    params: the params pytree (from :func:`params_from_torch`, or ``nnx.state(model, nnx.Param)``
      with ``weight_map``); its leaves' shapes, dtypes and shardings are those of the result.
    param_names: name of each torch parameter in torch's order: leaf names, or torch names with
      ``weight_map`` (see the module docstring).
    scheduler: the scheduler (or its ``state_dict()``) for optimizers torch keeps no step count
      for (SGD, Lion): their counters are set to its ``last_epoch``, which is the optimizer's
      step count when it is stepped after every optimizer step from the start.
    step_count: the number of ``optimizer.step()`` calls, for SGD/Lion (wins over ``scheduler``;
      needed with a per-epoch scheduler).
    weight_map: from :func:`copy_weights`: torch names -> nnx leaves, with layouts.

  Returns:
    The optimizer state, a pytree with the structure of ``tx.init(params)``.

  Raises:
    ValueError: torch keeps no step count for this optimizer and neither ``step_count`` nor
      ``scheduler`` is given; the parameters cannot be paired without a guess; a torch state
      tensor's shape differs from its parameter's (the message names the parameter); torch's state
      keys differ from the transformation's state fields (another optimizer class or flag, e.g.
      ``amsgrad``); parameters of a group disagree on ``step``; ``tx`` has no optimizer state this
      module knows.

  Examples:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = torch.optim.Adam([w], lr=0.1)
    >>> w.grad = torch.ones(2); opt.step()                    # torch: exp_avg = (1 - 0.9) * 1
    >>> tx = from_torch_optimizer(opt)
    >>> state = optimizer_state_from_torch(tx, opt, {"w": jnp.zeros(2)})
    >>> adam = state[2]
    >>> int(adam.step), [round(float(v), 6) for v in adam.exp_avg["w"]]
    (1, [0.1, 0.1])
  """
  fn = "optimizer_state_from_torch"
  sd, optimizer = _state_dict_of(fn, state_dict)
  ids = [i for g in sd["param_groups"] for i in g["params"]]
  torch_state = sd["state"]
  shapes = _torch_shapes(optimizer, ids, torch_state)
  lay = _order(fn, params, sd, optimizer, param_names, weight_map, shapes, free_unknown=True)
  n_leaves = len(lay.leaves)
  template = tx.init(params)
  found = _find_states(template)
  by_state = _twins_by_state()
  opt_states = [(p, s) for p, s in found if type(s) in by_state]
  if not opt_states:
    raise ValueError(f"{fn}: expected tx to contain a losslab_jax optimizer ({', '.join(supported_optimizers())}),"
                     " found none in tx.init(params)")
  torch_states = [_torch_entry(torch_state, ids[lay.position[j]]) for j in range(n_leaves)]
  owner: dict[int, str] = {}
  new: dict[str, Any] = {}
  counters: dict[str, int] = {}
  for path, s in opt_states:
    twin = by_state[type(s)]
    covered = _covered(fn, s, twin, lay.treedef, n_leaves)
    if covered is None:
      covered = list(range(n_leaves)) if len(opt_states) == 1 else []
    for j in covered:
      if j in owner:
        raise ValueError(f"{fn}: expected one optimizer state per parameter, got two for {lay.names[j]!r}")
      owner[j] = path
    new[path], counters[path] = _state_from_torch(fn, s, twin, covered, lay, torch_states, step_count, scheduler)
  for j in range(n_leaves):
    if j not in owner and torch_states[j] and len(opt_states) > 1:
      raise ValueError(f"{fn}: torch has state for parameter {lay.names[j]!r}, but no optimizer in tx updates it")
  new.update(_lr_counters(found, counters))
  return _replace_states(template, new, (*by_state, _optim.ScaleByLrState))


def _torch_entry(torch_state: Mapping[Any, Any], i: int) -> Mapping[str, Any]:
  """torch's state of parameter id ``i`` (keys int or str), without its ``None`` entries."""
  s = torch_state.get(i, torch_state.get(str(i)))
  return {k: v for k, v in (s or {}).items() if v is not None}


def _torch_shapes(optimizer: Any, ids: Sequence[int], torch_state: Mapping[Any, Any]) -> list[tuple[int, ...] | None]:
  """The torch shape of each parameter: of the parameters themselves when the optimizer is at hand,
  else of a state tensor of each (the largest: factored moments are smaller); ``None`` if it has none."""
  if optimizer is not None:
    return [tuple(p.shape) for g in optimizer.param_groups for p in g["params"]]
  shapes: list[tuple[int, ...] | None] = []
  for i in ids:
    tensors = [v for v in _torch_entry(torch_state, i).values() if hasattr(v, "shape") and len(v.shape) > 0]
    shapes.append(tuple(max(tensors, key=lambda v: v.numel()).shape) if tensors else None)
  return shapes


def _state_from_torch(fn: str, s: Any, twin: Any, covered: Sequence[int], lay: Layout,
                      torch_states: Sequence[Mapping[str, Any]], step_count: int | None,
                      scheduler: Any) -> tuple[Any, int]:
  """One optimizer state ``s`` filled from torch's state of the parameters it ``covered``, and its step count."""
  fields = _tree_fields(s, twin)
  scalars = [f for f in s._fields if f in _scalar_fields(twin) and (f != "step" or twin.torch_keeps_step)]
  leaves = {f: list(_field_leaves(fn, s, f, lay.treedef)) for f in fields}
  scalar_values: dict[str, set] = {f: set() for f in scalars}
  for j in covered:
    ts = torch_states[j]
    if not ts:
      continue
    who = lay.labels[j]
    here = [f for f in fields if not _placeholder(leaves[f][j], lay.leaves[j])]
    if set(ts) != set(here) | set(scalars):
      raise ValueError(f"{fn}: expected the torch state of {who} to have the keys"
                       f" {sorted(set(here) | set(scalars))} of the transformation's {type(s).__name__}, got"
                       f" {sorted(ts)}; build tx with from_torch_optimizer from the optimizer that produced this"
                       " state")
    for f in here:
      leaves[f][j] = _like(fn, ts[f], leaves[f][j], f"the torch state {f!r} of {who}", lay.to_flax[j])
    for f in scalars:
      scalar_values[f].add(num(ts[f]))
  for f, vals in scalar_values.items():
    if len(vals) > 1:
      raise ValueError(f"{fn}: expected the parameters of one group to share torch's {f!r}, got {sorted(vals)}"
                       " (torch skipped some parameters whose .grad was None); losslab_jax keeps one per group")
  n = _step_of(fn, twin, scalar_values, step_count, scheduler)
  repl = {f: jax.tree.unflatten(lay.treedef, leaves[f]) for f in fields}
  for f in scalars:
    if f != "step" and scalar_values[f]:
      repl[f] = jnp.asarray(scalar_values[f].pop(), getattr(s, f).dtype)
  if "step" in s._fields:                      # Muon's state has none (its lr counter is in the chain)
    repl["step"] = jnp.asarray(n, s.step.dtype)
  return s._replace(**repl), n


def _step_of(fn: str, twin: Any, scalar_values: dict[str, set], step_count: int | None, scheduler: Any) -> int:
  """The group's step count: torch's ``step`` where torch keeps one, else ``step_count``, else the scheduler's."""
  if twin.torch_keeps_step:
    return int(scalar_values["step"].pop()) if scalar_values["step"] else 0
  if step_count is not None:
    return int(step_count)
  if scheduler is not None:
    return last_epoch(scheduler)
  raise ValueError(f"{fn}: torch's {twin.torch_name} keeps no step count, and the converted state needs one"
                   " (it indexes lr/momentum schedules); pass step_count=<number of optimizer.step() calls> or"
                   " scheduler= (the scheduler stepped after every optimizer step)")


def _lr_counters(found: Sequence[tuple[str, Any]], counters: Mapping[str, int]) -> dict[str, Any]:
  """Each lr counter (``ScaleByLrState``) set to the step count of its nearest optimizer state."""
  out: dict[str, Any] = {}
  for path, s in found:
    if isinstance(s, _optim.ScaleByLrState):
      near = _nearest(path, list(counters))
      if near is not None:
        out[path] = _optim.ScaleByLrState(step=jnp.asarray(counters[near], s.step.dtype))
  return out


def _replace_states(template: Any, new: Mapping[str, Any], known: tuple[type, ...]) -> Any:
  """``template`` with each state of a ``known`` type at a path in ``new`` replaced by ``new[path]``."""

  def replace(path, x):
    return new.get(jax.tree_util.keystr(path), x) if isinstance(x, known) else x

  return jax.tree_util.tree_map_with_path(replace, template, is_leaf=lambda x: isinstance(x, known))


def optimizer_state_to_torch(tx_state: optax.OptState, params: Any, template: Any, *,
                             param_names: Sequence[str] | None = None,
                             weight_map: WeightMap | None = None) -> dict[str, Any]:
  """Convert ``tx``'s optimizer state into a torch ``state_dict()`` for ``optimizer.load_state_dict``.

  The inverse of :func:`optimizer_state_from_torch`: each optimizer state's per-parameter arrays
  become torch tensors under torch's keys (in torch layout, through ``weight_map``), with
  ``step`` (and ``mu_product``, ``eta``, ``mu``) as 0-d tensors of torch's scalar dtype. A group
  whose counter is 0 gets no entries, as a torch optimizer that never stepped (Adagrad excepted:
  torch creates its state at construction).

  Args:
    tx_state: the transformation's state.
    params: the params pytree the state belongs to.
    template: the torch optimizer to load into (its ``param_groups`` are copied into the result,
      so it should have the transformation's hyperparameters) or a ``state_dict()`` of one.
    param_names: name of each torch parameter in torch's order (leaf names; torch names with
      ``weight_map``).
    weight_map: from :func:`copy_weights`, for an nnx param tree.

  Returns:
    ``{"state": {index: {key: tensor}}, "param_groups": [...]}``. The groups' ``lr`` (and momenta)
    are the template's: a scheduled run's current lr is set by loading the scheduler's state too.

  Raises:
    ValueError: the state's optimizer does not match the template optimizer's class; a parameter
      is held by two optimizer states; the parameters cannot be paired without a guess.
  """
  fn = "optimizer_state_to_torch"
  torch = torch_module()
  twin_expected = None
  if not isinstance(template, Mapping) and hasattr(template, "param_groups"):
    twin_expected = twin_of(fn, template)
  sd, optimizer = _state_dict_of(fn, template)
  params, tx_state = _unbox(params), _unbox(tx_state)       # nnx.Optimizer's OptVariables, nnx Params
  groups = copy.deepcopy(list(sd["param_groups"]))
  ids = [i for g in groups for i in g["params"]]
  shapes = None
  if optimizer is not None:
    shapes = [tuple(p.shape) for g in optimizer.param_groups for p in g["params"]]
  lay = _order(fn, params, sd, optimizer, param_names, weight_map, shapes, free_unknown=False)
  n_leaves = len(lay.leaves)
  by_state = _twins_by_state()
  opt_states = [(p, s) for p, s in _find_states(tx_state) if type(s) in by_state]
  if not opt_states:
    raise ValueError(f"{fn}: expected tx_state to hold a losslab_jax optimizer state, found none")
  out: dict[Any, dict[str, Any]] = {}
  seen: set[int] = set()
  for _, s in opt_states:
    twin = by_state[type(s)]
    if twin_expected is not None and type(s) is not twin_expected.state_type:
      raise ValueError(f"{fn}: expected a {twin_expected.state_type.__name__} for torch's {twin_expected.torch_name},"
                       f" got a {type(s).__name__}")
    covered = _covered(fn, s, twin, lay.treedef, n_leaves)
    if covered is None:
      continue                                     # SGD without momentum: torch keeps nothing
    if seen & set(covered):
      raise ValueError(f"{fn}: expected one optimizer state per parameter, got two for"
                       f" {[lay.names[j] for j in sorted(seen & set(covered))]}")
    seen |= set(covered)
    n = int(np.asarray(s.step)) if "step" in s._fields else None
    if n == 0 and type(s) is not _optim.AdagradState:
      continue                                     # never stepped: torch has no state yet
    fields = _tree_fields(s, twin)
    leaves = {f: _field_leaves(fn, s, f, lay.treedef) for f in fields}
    for j in covered:
      entry: dict[str, Any] = {}
      for f in s._fields:
        if f in _scalar_fields(twin):
          if f != "step" or twin.torch_keeps_step:
            entry[f] = torch.tensor(float(np.asarray(getattr(s, f))), dtype=scalar_dtype())
        elif f in leaves and not _placeholder(leaves[f][j], lay.leaves[j]):
          entry[f] = to_tensor(lay.to_torch[j](np.asarray(leaves[f][j])))
      out[ids[lay.position[j]]] = entry
  return {"state": out, "param_groups": groups}


def nnx_optimizer_from_torch(nnx_module: Any, optimizer: Any, scheduler: Any = None, *, weight_map: WeightMap,
                             steps_per_epoch: int | None = None, step_count: int | None = None,
                             wrt: Any = None) -> Any:
  """A ``flax.nnx.Optimizer`` that continues a torch optimizer (and scheduler) on an nnx port, in one call.

  Equivalent to::

      tx = from_torch_optimizer(optimizer, scheduler, steps_per_epoch=..., weight_map=weight_map)
      opt = nnx.Optimizer(nnx_module, tx, wrt=nnx.Param)
      # opt.opt_state <- optimizer_state_from_torch(tx, optimizer, nnx.state(nnx_module, nnx.Param),
      #                                              weight_map=weight_map, scheduler=..., step_count=...)

  with ``opt.step`` set to torch's step count. Copy the weights first (``weight_map =
  copy_weights(torch_model, nnx_module)``); then ``opt.update(nnx_module, grads)`` takes the step
  torch's next ``optimizer.step()`` (and ``scheduler.step()``) would take.

  Args:
    nnx_module: the nnx port holding torch's weights (from :func:`copy_weights`).
    optimizer: the torch optimizer over the torch module's parameters.
    scheduler: its LR scheduler, or None.
    weight_map: the map :func:`copy_weights` returned.
    steps_per_epoch: see :func:`from_torch_optimizer`.
    step_count: optimizer steps so far, for optimizers torch keeps no count for (SGD, Lion).
    wrt: the nnx filter of the optimized variables (default ``nnx.Param``).

  Returns:
    An ``nnx.Optimizer``.

  Raises:
    ValueError: as :func:`from_torch_optimizer` and :func:`optimizer_state_from_torch`.

  Examples:
    >>> import torch
    >>> from flax import nnx
    >>> t = torch.nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...   _ = t.weight.fill_(1.0), t.bias.fill_(0.0)
    >>> opt = torch.optim.SGD(t.parameters(), lr=0.1, momentum=0.9)
    >>> t(torch.ones(1, 2)).sum().backward(); opt.step()   # torch: w = 1 - 0.1 * 1 = 0.9
    >>> m = nnx.eval_shape(lambda: nnx.Linear(2, 1, rngs=nnx.Rngs(0)))
    >>> wm = copy_weights(t, m)
    >>> o = nnx_optimizer_from_torch(m, opt, weight_map=wm, step_count=1)
    >>> _ = o.update(m, nnx.grad(lambda m: m(jnp.ones((1, 2))).sum())(m))  # buffer 0.9 * 1 + 1 = 1.9
    >>> [round(float(w), 6) for w in m.kernel[...].ravel()]             # 0.9 - 0.1 * 1.9
    [0.71, 0.71]
  """
  from flax import nnx

  fn = "nnx_optimizer_from_torch"
  wrt = nnx.Param if wrt is None else wrt
  tx = from_torch_optimizer(optimizer, scheduler, steps_per_epoch=steps_per_epoch, weight_map=weight_map,
                            step_count=step_count)
  opt = nnx.Optimizer(nnx_module, tx, wrt=wrt)
  params = nnx.state(nnx_module, wrt)
  # a scheduler's last_epoch counts optimizer steps only when stepped with each of them
  per_step = scheduler if steps_per_epoch in (None, 1) else None
  state = optimizer_state_from_torch(tx, optimizer, params, scheduler=per_step, step_count=step_count,
                                     weight_map=weight_map)
  is_var = lambda x: isinstance(x, nnx.Variable)  # noqa: E731
  slots = [v for v in jax.tree.leaves(opt.opt_state, is_leaf=is_var) if jax.tree.leaves(v)]   # not masked out
  values = jax.tree.leaves(state)
  if len(slots) != len(values):
    raise ValueError(f"{fn}: the converted state has {len(values)} arrays, nnx.Optimizer holds {len(slots)};"
                     " is wrt the parameters the torch optimizer updates?")
  for slot, v in zip(slots, values):
    slot.set_value(v)
  counts = [int(np.asarray(s.step)) for _, s in _find_states(state) if hasattr(s, "step")]
  if counts:
    opt.step.set_value(jnp.asarray(max(counts), opt.step.get_value().dtype))
  return opt
