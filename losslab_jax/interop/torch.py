"""Move a PyTorch training run to losslab_jax and back: optimizer, optimizer state, LR scheduler.

A run stopped in PyTorch continues in JAX on the same trajectory::

    import losslab_jax.interop.torch as llt

    params = llt.params_from_torch(model.named_parameters())           # {name: jax.Array}
    names = llt.torch_param_names(optimizer, model.named_parameters())  # torch's parameter order
    tx = llt.from_torch_optimizer(optimizer, scheduler, param_names=names)
    opt_state = llt.optimizer_state_from_torch(tx, optimizer.state_dict(), params,
                                               param_names=names, scheduler=scheduler)
    # ... updates, opt_state = tx.update(grads, opt_state, params) as usual

and back: ``optimizer.load_state_dict(llt.optimizer_state_to_torch(opt_state, params, optimizer,
param_names=names))``.

Parameter order. torch numbers the parameters of an optimizer 0, 1, 2, ... in the order of its
param groups and, within a group, of the ``params`` list it was given; its ``state_dict()`` keys
the per-parameter state by those numbers. Here a parameter is a leaf of the params pytree, named
by its key path joined with dots (``{"fc": {"weight": w}}`` -> ``"fc.weight"``, a list index is
its number, so torch's ``model.named_parameters()`` names fit nested dicts built from them).
``param_names[i]`` names the leaf holding torch's parameter ``i``. Where ``param_names`` is not
given, the names the optimizer recorded (torch >= 2.6 optimizers built from
``model.named_parameters()`` keep ``param_names`` in each group) are used, and failing those,
torch's order is taken to be the order of ``jax.tree.leaves(params)`` (for a dict: sorted keys).

Supported optimizers (:data:`SUPPORTED_OPTIMIZERS`): ``torch.optim`` SGD, Adam, AdamW, Adamax,
NAdam, RAdam, RMSprop, Adagrad, Adadelta, Rprop, ASGD, and ``lion_pytorch.Lion``. Supported
schedulers (:data:`SUPPORTED_SCHEDULERS`): StepLR, MultiStepLR, ExponentialLR, ConstantLR,
LinearLR, PolynomialLR, CosineAnnealingLR, CosineAnnealingWarmRestarts, OneCycleLR and CyclicLR
(with momentum cycling), LambdaLR and MultiplicativeLR (the lambdas must be written with jnp
operations), SequentialLR, ChainedScheduler.

This module imports ``torch`` only inside its functions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from losslab_jax import optim as _optim
from losslab_jax import schedules as _schedules
from losslab_jax.interop._weights import Placement as Placement
from losslab_jax.interop._weights import WeightEntry as WeightEntry
from losslab_jax.interop._weights import WeightMap as WeightMap
from losslab_jax.interop._weights import copy_weights as copy_weights
from losslab_jax.interop._weights import default_layout as default_layout
from losslab_jax.optim import ScaleByLrState

SUPPORTED_OPTIMIZERS = ("SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta",
                        "Rprop", "ASGD", "Lion")
"""torch optimizer classes :func:`from_torch_optimizer` converts (``Lion`` is ``lion_pytorch.Lion``)."""

SUPPORTED_SCHEDULERS = ("StepLR", "MultiStepLR", "ExponentialLR", "ConstantLR", "LinearLR", "PolynomialLR",
                        "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "CyclicLR", "LambdaLR",
                        "MultiplicativeLR", "SequentialLR", "ChainedScheduler")
"""``torch.optim.lr_scheduler`` classes :func:`from_torch_optimizer` converts."""


class _Kind(NamedTuple):
  state: type                 # the losslab_jax state NamedTuple holding this optimizer's per-parameter state
  torch_step: bool            # torch keeps a per-parameter 'step'


__all__ = ["Placement", "WeightEntry", "WeightMap", "copy_weights", "default_layout", "SUPPORTED_OPTIMIZERS", "SUPPORTED_SCHEDULERS", "from_torch_optimizer", "leaf_names",
           "optimizer_state_from_torch", "optimizer_state_to_torch", "params_from_torch", "params_to_torch",
           "torch_param_names"]

_KINDS: dict[str, _Kind] = {
    "SGD": _Kind(_optim.SGDState, False),
    "Adam": _Kind(_optim.AdamState, True),
    "AdamW": _Kind(_optim.AdamState, True),
    "Adamax": _Kind(_optim.AdamaxState, True),
    "NAdam": _Kind(_optim.NAdamState, True),
    "RAdam": _Kind(_optim.RAdamState, True),
    "RMSprop": _Kind(_optim.RMSpropState, True),
    "Adagrad": _Kind(_optim.AdagradState, True),
    "Adadelta": _Kind(_optim.AdadeltaState, True),
    "Rprop": _Kind(_optim.RpropState, True),
    "ASGD": _Kind(_optim.ASGDState, True),
    "Lion": _Kind(_optim.LionState, False),
}
_TORCH_STEP = {k.state: k.torch_step for k in _KINDS.values()}   # state type -> torch keeps 'step'
_OPT_STATES = tuple(_TORCH_STEP)
_KNOWN_STATES = (*_OPT_STATES, ScaleByLrState)
_SCALAR_FIELDS = frozenset({"step", "mu_product", "eta", "mu"})   # one value per parameter in torch


# --- small helpers --------------------------------------------------------------------------------


def _torch():
  try:
    import torch
  except ImportError as exc:  # pragma: no cover - torch is a test dependency
    raise ImportError("losslab_jax.interop.torch needs PyTorch: pip install torch") from exc
  return torch


def _num(x: Any) -> float:
  """A Python float from a number or a 0-d tensor/array (torch keeps some hyperparameters as tensors)."""
  return float(x.item()) if hasattr(x, "item") else float(x)


def _to_numpy(t: Any) -> np.ndarray:
  """A torch tensor (or anything array-like) as a NumPy array, bf16 through float32."""
  torch = _torch()
  if isinstance(t, torch.Tensor):
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
      t = t.float()
    return t.numpy().copy()                       # never alias torch's memory (it keeps changing)
  return np.array(t, copy=True)


def _to_tensor(x: Any) -> Any:
  torch = _torch()
  a = np.asarray(x)
  if a.dtype == jnp.bfloat16:
    return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
  return torch.from_numpy(np.array(a, copy=True))


def _scalar_dtype():
  """torch's ``_get_scalar_dtype()``: the dtype of ``step``, ``mu_product``, ``eta``, ``mu``."""
  torch = _torch()
  return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _is_off(value: Any) -> bool:
  """A state field switched off by a flag holds ``()``."""
  return isinstance(value, tuple) and len(value) == 0


def _path_name(path: Sequence[Any]) -> str:
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
  return [_path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


class _Layout(NamedTuple):
  """Where each leaf of ``params`` sits in torch's parameter order."""

  names: list[str]              # leaf names, jax leaf order
  leaves: list[Any]
  treedef: Any
  position: list[int]           # position[j]: torch's parameter number of leaf j


def _layout(fn: str, params: Any, param_names: Sequence[str] | None, n_torch: int) -> _Layout:
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  names = [_path_name(p) for p, _ in flat]
  leaves = [leaf for _, leaf in flat]
  if param_names is None:
    if len(leaves) != n_torch:
      raise ValueError(
          f"{fn}: expected params with one leaf per torch parameter ({n_torch}), got {len(leaves)} leaves"
          f" ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}); pass only the optimized parameters,"
          " or param_names=[leaf name of torch parameter 0, 1, ...]")
    return _Layout(names, leaves, treedef, list(range(n_torch)))
  param_names = [str(n) for n in param_names]
  if len(param_names) != n_torch:
    raise ValueError(f"{fn}: expected {n_torch} param_names (one per torch parameter), got {len(param_names)}")
  if len(set(param_names)) != len(param_names):
    dup = sorted({n for n in param_names if param_names.count(n) > 1})
    raise ValueError(f"{fn}: expected distinct param_names, got {dup} more than once")
  index = {n: j for j, n in enumerate(names)}
  unknown = [n for n in param_names if n not in index]
  if unknown:
    raise ValueError(f"{fn}: expected every name in param_names to name a leaf of params, got {unknown} which"
                     f" do not; the leaves are {names}")
  unnamed = sorted(set(names) - set(param_names))
  if unnamed:
    raise ValueError(f"{fn}: expected every leaf of params to be one of the torch optimizer's parameters, got"
                     f" leaves {unnamed} that are not in param_names; pass only the optimized parameters")
  position = [0] * len(names)
  for i, n in enumerate(param_names):
    position[index[n]] = i
  return _Layout(names, leaves, treedef, position)


def _names_from_groups(groups: Sequence[Mapping[str, Any]]) -> list[str] | None:
  """The ``param_names`` torch >= 2.6 keeps in groups built from ``named_parameters()``, if all have them."""
  if groups and all("param_names" in g for g in groups):
    return [n for g in groups for n in g["param_names"]]
  return None


# --- parameters -----------------------------------------------------------------------------------


def params_from_torch(named_parameters: Any, *, dtype: Any = None) -> dict[str, jax.Array]:
  """torch parameters as a flat dict ``{name: jax.Array}`` (copies, in torch's order).

  Args:
    named_parameters: ``model.named_parameters()``, a ``torch.nn.Module`` (its named parameters),
      ``model.state_dict()``, or any mapping / iterable of ``(name, tensor)``.
    dtype: cast every array to this dtype; by default each keeps its torch dtype (float64 needs
      ``jax_enable_x64``).

  Returns:
    ``{name: array}``. Its leaf names are torch's names, so ``param_names`` built from the same
    ``named_parameters`` (see :func:`torch_param_names`) address it directly.

  Raises:
    ValueError: a name appears twice.
  """
  torch = _torch()
  if isinstance(named_parameters, torch.nn.Module):
    named_parameters = named_parameters.named_parameters()
  items = named_parameters.items() if isinstance(named_parameters, Mapping) else named_parameters
  out: dict[str, jax.Array] = {}
  for name, t in items:
    if name in out:
      raise ValueError(f"params_from_torch: expected distinct parameter names, got {name!r} twice")
    a = _to_numpy(t)
    out[name] = jnp.asarray(a, dtype=dtype if dtype is not None else a.dtype)
  return out


def params_to_torch(params: Any) -> dict[str, Any]:
  """The leaves of ``params`` as ``{leaf name: torch.Tensor}`` (copies), e.g. for ``model.load_state_dict``."""
  return {n: _to_tensor(leaf) for n, leaf in zip(leaf_names(params), jax.tree.leaves(params))}


def torch_param_names(optimizer: Any, named_parameters: Any) -> list[str]:
  """The name of each of ``optimizer``'s parameters, in torch's order (the ``param_names`` argument).

  Args:
    optimizer: a torch optimizer.
    named_parameters: ``model.named_parameters()`` (or a module, or a mapping name -> parameter)
      covering every parameter of the optimizer.

  Raises:
    ValueError: an optimizer parameter is not among ``named_parameters``.
  """
  torch = _torch()
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


# --- optimizer ------------------------------------------------------------------------------------


def _optimizer_kind(fn: str, optimizer: Any) -> str:
  torch = _torch()
  t = type(optimizer)
  for name in SUPPORTED_OPTIMIZERS:
    if t is getattr(torch.optim, name, None):
      return name
  if t.__name__ == "Lion" and t.__module__.startswith("lion_pytorch"):
    return "Lion"
  raise NotImplementedError(
      f"{fn}: expected one of the supported optimizers ({', '.join(SUPPORTED_OPTIMIZERS)}), got"
      f" {t.__module__}.{t.__qualname__}; subclasses are not converted (their step may differ)")


def _betas(h: Mapping[str, Any], beta1: Any) -> tuple[Any, float]:
  b = [_num(v) for v in h["betas"]]
  return (b[0] if beta1 is None else beta1, b[1])


def _build(kind: str, h: Mapping[str, Any], lr: Any, mom: Any, optimizer: Any) -> optax.GradientTransformation:
  """The losslab_jax optimizer for one torch param group ``h`` (``lr``/``mom`` may be schedules)."""
  f = lambda k: _num(h[k])  # noqa: E731
  mx = bool(h.get("maximize", False))
  if kind == "SGD":
    return _optim.sgd(lr=lr, momentum=f("momentum") if mom is None else mom, dampening=f("dampening"),
                      weight_decay=f("weight_decay"), nesterov=bool(h["nesterov"]), maximize=mx)
  if kind in ("Adam", "AdamW"):
    return _optim.adam(lr=lr, betas=_betas(h, mom), eps=f("eps"), weight_decay=f("weight_decay"),
                       amsgrad=bool(h["amsgrad"]), maximize=mx,
                       decoupled_weight_decay=bool(h.get("decoupled_weight_decay", kind == "AdamW")))
  if kind == "Adamax":
    return _optim.adamax(lr=lr, betas=_betas(h, mom), eps=f("eps"), weight_decay=f("weight_decay"), maximize=mx)
  if kind == "NAdam":
    return _optim.nadam(lr=lr, betas=_betas(h, mom), eps=f("eps"), weight_decay=f("weight_decay"),
                        momentum_decay=f("momentum_decay"),
                        decoupled_weight_decay=bool(h.get("decoupled_weight_decay", False)), maximize=mx)
  if kind == "RAdam":
    return _optim.radam(lr=lr, betas=_betas(h, mom), eps=f("eps"), weight_decay=f("weight_decay"),
                        decoupled_weight_decay=bool(h.get("decoupled_weight_decay", False)), maximize=mx)
  if kind == "RMSprop":
    return _optim.rmsprop(lr=lr, alpha=f("alpha"), eps=f("eps"), weight_decay=f("weight_decay"),
                          momentum=f("momentum") if mom is None else mom, centered=bool(h["centered"]),
                          maximize=mx)
  if kind == "Adagrad":
    return _optim.adagrad(lr=lr, lr_decay=f("lr_decay"), weight_decay=f("weight_decay"),
                          initial_accumulator_value=f("initial_accumulator_value"), eps=f("eps"), maximize=mx)
  if kind == "Adadelta":
    return _optim.adadelta(lr=lr, rho=f("rho"), eps=f("eps"), weight_decay=f("weight_decay"), maximize=mx)
  if kind == "Rprop":
    return _optim.rprop(lr=lr, etas=tuple(_num(v) for v in h["etas"]),
                        step_sizes=tuple(_num(v) for v in h["step_sizes"]), maximize=mx)
  if kind == "ASGD":
    return _optim.asgd(lr=lr, lambd=f("lambd"), alpha=f("alpha"), t0=f("t0"), weight_decay=f("weight_decay"),
                       maximize=mx)
  # lion_pytorch.Lion; its decoupled mode divides the decay by the initial lr: p *= 1 - lr * (wd / lr0)
  wd = f("weight_decay")
  if getattr(optimizer, "decoupled_wd", False):
    wd = wd / optimizer._init_lr  # noqa: SLF001 - lion-pytorch keeps it there
  return _optim.lion(lr=lr, betas=_betas(h, mom), weight_decay=wd)


def _group_torch_step(fn: str, optimizer: Any, g: int, kind: str, fallback: int) -> int:
  """torch's step count of param group ``g`` (``fallback`` for SGD/Lion, which keep none)."""
  if not _KINDS[kind].torch_step:
    return fallback
  steps = {_num(optimizer.state[p]["step"]) for p in optimizer.param_groups[g]["params"]
           if p in optimizer.state and "step" in optimizer.state[p]}
  if len(steps) > 1:
    raise ValueError(f"{fn}: expected the parameters of param group {g} to share one step count, got"
                     f" {sorted(steps)} (some parameters were skipped by torch because their .grad was None);"
                     " losslab_jax keeps one count per group")
  return int(steps.pop()) if steps else 0


def _last_epoch(scheduler: Any) -> int:
  """How many times ``scheduler.step()`` ran (a scheduler or its ``state_dict()``)."""
  if isinstance(scheduler, Mapping):
    if "last_epoch" in scheduler:
      return int(scheduler["last_epoch"])
    return _last_epoch(scheduler["_schedulers"][0])
  if hasattr(scheduler, "last_epoch"):
    return int(scheduler.last_epoch)
  return _last_epoch(scheduler._schedulers[0])  # noqa: SLF001 - ChainedScheduler keeps no last_epoch


def _recover(ok: Callable[[float], bool], approx: float) -> float:
  """A round number ``c`` near ``approx`` with ``ok(c)`` (the user's constructor argument), else ``approx``."""
  for digits in (4, 8, 12):
    c = round(approx, digits)
    if c > 0 and ok(c):
      return c
  return approx


def _schedule(fn: str, sched: Any, g: int) -> tuple[Any, Any]:
  """(lr schedule, momentum schedule or None) of param group ``g`` for a torch scheduler."""
  torch = _torch()
  S = torch.optim.lr_scheduler  # noqa: N806
  t = type(sched)
  name = next((n for n in SUPPORTED_SCHEDULERS if t is getattr(S, n, None)), None)
  if name is None:
    hint = ""
    if t is getattr(S, "ReduceLROnPlateau", None):
      hint = ("; ReduceLROnPlateau's next lr depends on the metric: convert with scheduler=None (the group's"
              " current lr is used) and chain ll.optim.reduce_lr_on_plateau(..., base_lr=that lr) yourself")
    raise NotImplementedError(f"{fn}: expected one of the supported schedulers ({', '.join(SUPPORTED_SCHEDULERS)}),"
                              f" got {t.__module__}.{t.__qualname__}{hint}")
  s = _schedules
  if name in ("SequentialLR", "ChainedScheduler"):
    children = [_schedule(fn, c, g) for c in sched._schedulers]  # noqa: SLF001
    if any(m is not None for _, m in children):
      raise NotImplementedError(f"{fn}: a {name} whose schedulers cycle the momentum is not supported")
    lrs = [lr for lr, _ in children]
    if name == "SequentialLR":
      return s.sequential_lr(lrs, list(sched._milestones)), None  # noqa: SLF001
    return s.chained(lrs, lr=float(sched._schedulers[0].base_lrs[g])), None  # noqa: SLF001
  if name == "OneCycleLR":
    group = sched.optimizer.param_groups[g]
    total = int(sched.total_steps)
    phases = sched._schedule_phases  # noqa: SLF001
    pct = _recover(lambda p: float(p * total) - 1 == phases[0]["end_step"], (phases[0]["end_step"] + 1) / total)
    anneal = getattr(sched, "_anneal_func_type", "cos")
    initial, peak, low = (_num(group[k]) for k in ("initial_lr", "max_lr", "min_lr"))
    d = _recover(lambda c: peak / c == initial, peak / initial)
    d_f = _recover(lambda c: initial / c == low, initial / low)
    three = len(phases) == 3
    lr = s.one_cycle_lr(peak, total, pct, anneal, d, d_f, three)
    mom = None
    if sched.cycle_momentum:
      mom = s.one_cycle_momentum(total, _num(group["base_momentum"]), _num(group["max_momentum"]), pct, anneal,
                                 three)
    return lr, mom
  if name == "CyclicLR":
    up = int(round(sched.total_size * sched.step_ratio))
    down = int(round(sched.total_size)) - up
    kw: dict[str, Any] = {"mode": sched.mode, "gamma": float(sched.gamma)}
    custom = getattr(sched, "_scale_fn_custom", None)
    if custom is not None:
      kw.update(scale_fn=custom, scale_mode=sched.scale_mode)
    lr = s.cyclic_lr(float(sched.base_lrs[g]), float(sched.max_lrs[g]), up, down, **kw)
    mom = None
    if sched.cycle_momentum:
      mom = s.cyclic_momentum(float(sched.base_momentums[g]), float(sched.max_momentums[g]), up, down, **kw)
    return lr, mom
  base = float(sched.base_lrs[g])
  if name == "StepLR":
    return s.step_lr(base, int(sched.step_size), float(sched.gamma)), None
  if name == "MultiStepLR":
    return s.multistep_lr(base, sorted(sched.milestones.elements()), float(sched.gamma)), None
  if name == "ExponentialLR":
    return s.exponential_lr(base, float(sched.gamma)), None
  if name == "ConstantLR":
    return s.constant_lr(base, float(sched.factor), int(sched.total_iters)), None
  if name == "LinearLR":
    return s.linear_lr(base, float(sched.start_factor), float(sched.end_factor), int(sched.total_iters)), None
  if name == "PolynomialLR":
    return s.polynomial_lr(base, int(sched.total_iters), float(sched.power)), None
  if name == "CosineAnnealingLR":
    return s.cosine_annealing_lr(base, sched.T_max, float(sched.eta_min)), None
  if name == "CosineAnnealingWarmRestarts":
    return s.cosine_annealing_warm_restarts(base, int(sched.T_0), int(sched.T_mult), float(sched.eta_min)), None
  if name == "LambdaLR":
    return s.lambda_lr(base, sched.lr_lambdas[g]), None
  return s.multiplicative_lr(base, sched.lr_lambdas[g]), None  # MultiplicativeLR


def _shift(schedule: Any, offset: int) -> Any:
  """``count -> schedule(count + offset)``."""
  if schedule is None or offset == 0:
    return schedule

  def shifted(count):
    c = jnp.asarray(count)
    return schedule(c + jnp.asarray(offset, c.dtype))

  return shifted


def from_torch_optimizer(optimizer: Any, scheduler: Any = None, *,
                         param_names: Sequence[str] | None = None) -> optax.GradientTransformationExtraArgs:
  """The losslab_jax transformation equivalent to a torch optimizer (and its LR scheduler).

  Each param group's class and hyperparameters become the matching ``ll.optim`` optimizer
  (torch's names and meanings carry over one to one). One group gives that optimizer; several
  give :func:`~losslab_jax.optim.param_groups` with labels ``"group0"``, ``"group1"``, ... assigned
  leaf by leaf through ``param_names`` (see the module docstring for the order).

  A scheduler becomes each group's ``lr`` schedule (and ``betas[0]``/``momentum`` schedule when
  OneCycleLR or CyclicLR cycle the momentum), built from the scheduler's base lrs and offset so that
  the transformation's update counter continues where torch stopped: with the state from
  :func:`optimizer_state_from_torch`, the next update uses the lr torch's next ``optimizer.step()``
  would use (``scheduler.get_last_lr()``), and every later one follows torch's
  ``optimizer.step(); scheduler.step()`` loop. The offset is ``scheduler.last_epoch`` minus torch's
  step count (0 when both were stepped together from the start; for SGD and Lion, which keep no
  step count, it is 0).

  Args:
    optimizer: a torch optimizer of a class in :data:`SUPPORTED_OPTIMIZERS` (fresh, or in the
      middle of a run: the group lrs and momenta are read as they are now).
    scheduler: ``None`` (each group's current ``lr`` is a constant), or a scheduler of a class in
      :data:`SUPPORTED_SCHEDULERS` attached to ``optimizer``, stepped once per optimizer step.
    param_names: with several param groups, the leaf name of each torch parameter in torch's
      order (see :func:`torch_param_names`); by default the names kept in the groups, else the
      params' leaf order.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Raises:
    NotImplementedError: an unsupported optimizer or scheduler class (the message lists the
      supported ones), or a SequentialLR/ChainedScheduler that cycles the momentum.
    ValueError: the scheduler belongs to another optimizer; a group's parameters have different
      torch step counts; (at ``init``) params that do not match ``param_names``.

  Notes:
    Torch twin: ``torch.optim.<Class>`` with ``torch.optim.lr_scheduler.<Scheduler>``. ``foreach``,
    ``fused``, ``capturable`` and ``differentiable`` select torch kernels and are ignored (the
    numbers follow torch's single-tensor path). LambdaLR/MultiplicativeLR lambdas and a CyclicLR
    ``scale_fn`` are reused as they are and must be written with jnp operations.
    Parity: float64 <= 1e-10, float32 <= 1e-5 for 50 steps continued in JAX after 50 torch steps
    (``tests/interop/test_torch.py``).

  Examples:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(3))
    >>> opt = torch.optim.AdamW([w], lr=1e-3, weight_decay=0.1)
    >>> tx = from_torch_optimizer(opt)  # ll.optim.adamw(lr=1e-3, weight_decay=0.1)
  """
  fn = "from_torch_optimizer"
  kind = _optimizer_kind(fn, optimizer)
  groups = optimizer.param_groups
  last_epoch = None
  if scheduler is not None:
    if getattr(scheduler, "optimizer", optimizer) is not optimizer:
      raise ValueError(f"{fn}: expected a scheduler attached to `optimizer`, got one attached to another optimizer")
    last_epoch = _last_epoch(scheduler)
  txs = []
  for g, h in enumerate(groups):
    lr, mom = _num(h["lr"]), None
    if scheduler is not None:
      lr, mom = _schedule(fn, scheduler, g)
      offset = last_epoch - _group_torch_step(fn, optimizer, g, kind, fallback=last_epoch)
      lr, mom = _shift(lr, offset), _shift(mom, offset)
    txs.append(_build(kind, h, lr, mom, optimizer))
  if len(txs) == 1:
    return txs[0]

  sizes = [len(h["params"]) for h in groups]
  group_of = [g for g, k in enumerate(sizes) for _ in range(k)]
  names = param_names if param_names is not None else _names_from_groups(groups)

  def labels(tree):
    lay = _layout(fn, tree, names, len(group_of))
    return jax.tree.unflatten(lay.treedef, [f"group{group_of[lay.position[j]]}" for j in range(len(lay.leaves))])

  return _optim.param_groups({f"group{g}": tx for g, tx in enumerate(txs)}, labels)


# --- optimizer state ------------------------------------------------------------------------------


def _find_states(tree: Any) -> list[tuple[str, Any]]:
  """``(key path string, state)`` of every optimizer / lr-counter state inside an optax state."""
  found: list[tuple[str, Any]] = []

  def visit(path, x):
    if isinstance(x, _KNOWN_STATES):
      found.append((jax.tree_util.keystr(path), x))
    return x

  jax.tree_util.tree_map_with_path(visit, tree, is_leaf=lambda x: isinstance(x, _KNOWN_STATES))
  return found


def _tree_fields(state: Any) -> list[str]:
  return [f for f in state._fields if f not in _SCALAR_FIELDS and not _is_off(getattr(state, f))]


def _field_leaves(fn: str, state: Any, field: str, treedef: Any) -> list[Any]:
  try:
    return treedef.flatten_up_to(getattr(state, field))
  except (ValueError, TypeError) as exc:
    raise ValueError(f"{fn}: expected the optimizer state's {type(state).__name__}.{field} to have the params'"
                     f" structure {treedef}; was the transformation initialized with other params? ({exc})") from None


def _covered(fn: str, state: Any, treedef: Any, n_leaves: int) -> list[int] | None:
  """Leaf indices this optimizer state holds (not masked out by param_groups); None if it holds no tree."""
  fields = _tree_fields(state)
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


def _state_dict_of(fn: str, state_dict: Any) -> Mapping[str, Any]:
  if not isinstance(state_dict, Mapping) and hasattr(state_dict, "state_dict"):
    state_dict = state_dict.state_dict()
  if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
    raise ValueError(f"{fn}: expected a torch optimizer state_dict() (a dict with 'state' and 'param_groups'),"
                     f" got {type(state_dict).__name__}")
  return state_dict


def _like(fn: str, value: Any, template: jax.Array, what: str) -> jax.Array:
  """``value`` as an array with ``template``'s shape check, dtype and sharding."""
  a = _to_numpy(value)
  if a.shape != tuple(template.shape):
    raise ValueError(f"{fn}: expected {what} of shape {tuple(template.shape)} (the params leaf), got shape"
                     f" {a.shape}")
  a = a.astype(template.dtype)
  sharding = getattr(template, "sharding", None)
  return jax.device_put(a, sharding) if sharding is not None else jnp.asarray(a)


def optimizer_state_from_torch(tx: optax.GradientTransformation, state_dict: Any, params: Any, *,
                               param_names: Sequence[str] | None = None, scheduler: Any = None,
                               step_count: int | None = None) -> optax.OptState:
  """Convert a torch optimizer's ``state_dict()`` into ``tx``'s state for ``params``.

  ``tx.init(params)`` gives the structure; every optimizer state in it (``AdamState``,
  ``SGDState``, ...; inside chains and param groups too) takes torch's per-parameter tensors,
  matched by name (``exp_avg``, ``momentum_buffer``, ...) and by parameter through
  ``param_names``. Parameters torch has no state for yet (no step taken) keep the initial state,
  which is what torch creates at its first step. Every update counter of a group (the optimizer's
  ``step`` and the lr counter of its chain) is set to torch's step count, so bias corrections and
  schedules continue where torch stopped. Other states in ``tx`` (clipping, plateau, ...) keep
  their initial values.

  Args:
    tx: the transformation, usually from :func:`from_torch_optimizer` on the same optimizer.
    state_dict: ``optimizer.state_dict()`` (or the optimizer itself).
    params: the params pytree (e.g. from :func:`params_from_torch`); its leaves' shapes, dtypes
      and shardings are those of the returned state.
    param_names: leaf name of each torch parameter, in torch's order (see the module docstring).
    scheduler: the scheduler given to :func:`from_torch_optimizer` (or its ``state_dict()``):
      SGD and Lion keep no step count, so their counters are set to its ``last_epoch``.
    step_count: the number of ``optimizer.step()`` calls, for SGD/Lion (overrides ``scheduler``);
      without either, their counters are 1 once torch has state (0 before), which is right
      whenever ``tx`` has no schedule.

  Returns:
    The optimizer state, a pytree with the structure of ``tx.init(params)``.

  Raises:
    ValueError: a torch state tensor's shape differs from its parameter's (the message names the
      parameter); torch's state keys differ from the transformation's state fields (another
      optimizer class or flag, e.g. ``amsgrad``); parameters of a group disagree on ``step``;
      ``params``/``param_names`` do not match torch's parameter list; ``tx`` has no optimizer state
      this module knows.
  """
  fn = "optimizer_state_from_torch"
  sd = _state_dict_of(fn, state_dict)
  ids = [i for g in sd["param_groups"] for i in g["params"]]
  names = param_names if param_names is not None else _names_from_groups(sd["param_groups"])
  lay = _layout(fn, params, names, len(ids))
  n_leaves = len(lay.leaves)
  template = tx.init(params)
  found = _find_states(template)
  opt_states = [(p, s) for p, s in found if isinstance(s, _OPT_STATES)]
  if not opt_states:
    raise ValueError(f"{fn}: expected tx to contain a losslab_jax optimizer ({', '.join(SUPPORTED_OPTIMIZERS)}),"
                     " found none in tx.init(params)")
  torch_state = sd["state"]

  def state_of(j: int) -> Mapping[str, Any]:
    i = ids[lay.position[j]]
    s = torch_state.get(i, torch_state.get(str(i)))
    return {k: v for k, v in (s or {}).items() if v is not None}

  owner: dict[int, str] = {}
  new: dict[str, Any] = {}
  counters: dict[str, int] = {}
  for path, s in opt_states:
    covered = _covered(fn, s, lay.treedef, n_leaves)
    if covered is None:
      covered = list(range(n_leaves)) if len(opt_states) == 1 else []
    for j in covered:
      if j in owner:
        raise ValueError(f"{fn}: expected one optimizer state per parameter, got two for {lay.names[j]!r}")
      owner[j] = path
    t = type(s)
    has_step = _TORCH_STEP[t]
    fields = _tree_fields(s)
    scalars = [f for f in s._fields if f in _SCALAR_FIELDS and (f != "step" or has_step)]
    expected = set(fields) | set(scalars)
    leaves = {f: list(_field_leaves(fn, s, f, lay.treedef)) for f in fields}
    scalar_values: dict[str, set] = {f: set() for f in scalars}
    any_state = False
    for j in covered:
      ts = state_of(j)
      if not ts:
        continue
      any_state = True
      who = f"torch parameter {lay.position[j]} ({lay.names[j]!r})"
      if set(ts) != expected:
        raise ValueError(f"{fn}: expected the torch state of {who} to have the keys {sorted(expected)} of the"
                         f" transformation's {t.__name__}, got {sorted(ts)}; build tx with from_torch_optimizer"
                         " from the optimizer that produced this state")
      for f in fields:
        leaves[f][j] = _like(fn, ts[f], leaves[f][j], f"the torch state {f!r} of {who}")
      for f in scalars:
        scalar_values[f].add(_num(ts[f]))
    for f, vals in scalar_values.items():
      if len(vals) > 1:
        raise ValueError(f"{fn}: expected the parameters of one group to share torch's {f!r}, got {sorted(vals)}"
                         " (torch skipped some parameters whose .grad was None); losslab_jax keeps one per group")
    if has_step:
      n = int(scalar_values["step"].pop()) if scalar_values["step"] else 0
    elif step_count is not None:
      n = int(step_count)
    elif scheduler is not None:
      n = _last_epoch(scheduler)
    else:
      n = 1 if any_state else 0
    counters[path] = n
    repl = {f: jax.tree.unflatten(lay.treedef, leaves[f]) for f in fields}
    for f in scalars:
      if f != "step" and scalar_values[f]:
        old = getattr(s, f)
        repl[f] = jnp.asarray(scalar_values[f].pop(), old.dtype)
    repl["step"] = jnp.asarray(n, s.step.dtype)
    new[path] = s._replace(**repl)
  for j in range(n_leaves):
    if j not in owner and state_of(j) and len(opt_states) > 1:
      raise ValueError(f"{fn}: torch has state for parameter {lay.names[j]!r}, but no optimizer in tx updates it")
  for path, s in found:
    if isinstance(s, ScaleByLrState):
      near = _nearest(path, list(counters))
      new[path] = ScaleByLrState(step=jnp.asarray(counters[near], s.step.dtype))

  def replace(path, x):
    return new.get(jax.tree_util.keystr(path), x) if isinstance(x, _KNOWN_STATES) else x

  return jax.tree_util.tree_map_with_path(replace, template, is_leaf=lambda x: isinstance(x, _KNOWN_STATES))


def optimizer_state_to_torch(tx_state: optax.OptState, params: Any, template: Any, *,
                             param_names: Sequence[str] | None = None) -> dict[str, Any]:
  """Convert ``tx``'s optimizer state into a torch ``state_dict()`` for ``optimizer.load_state_dict``.

  The inverse of :func:`optimizer_state_from_torch`: each optimizer state's per-parameter arrays
  become torch tensors under torch's keys, with ``step`` (and ``mu_product``, ``eta``, ``mu``) as
  0-d tensors of torch's scalar dtype. A group whose counter is 0 gets no entries, as a torch
  optimizer that never stepped (Adagrad excepted: torch creates its state at construction).

  Args:
    tx_state: the transformation's state.
    params: the params pytree the state belongs to.
    template: the torch optimizer to load into (its ``param_groups`` are copied into the result,
      so it should have the transformation's hyperparameters) or a ``state_dict()`` of one.
    param_names: leaf name of each torch parameter, in torch's order (see the module docstring).

  Returns:
    ``{"state": {index: {key: tensor}}, "param_groups": [...]}``. The groups' ``lr`` (and momenta)
    are the template's: a scheduled run's current lr is set by loading the scheduler's state too.

  Raises:
    ValueError: the state's optimizer does not match the template optimizer's class; a parameter
      is held by two optimizer states; ``params``/``param_names`` do not match the template's
      parameter list.
  """
  fn = "optimizer_state_to_torch"
  torch = _torch()
  kind = None
  if not isinstance(template, Mapping) and hasattr(template, "param_groups"):
    kind = _optimizer_kind(fn, template)
  sd = _state_dict_of(fn, template)
  groups = copy.deepcopy(list(sd["param_groups"]))
  ids = [i for g in groups for i in g["params"]]
  names = param_names if param_names is not None else _names_from_groups(groups)
  lay = _layout(fn, params, names, len(ids))
  n_leaves = len(lay.leaves)
  opt_states = [(p, s) for p, s in _find_states(tx_state) if isinstance(s, _OPT_STATES)]
  if not opt_states:
    raise ValueError(f"{fn}: expected tx_state to hold a losslab_jax optimizer state, found none")
  out: dict[Any, dict[str, Any]] = {}
  seen: set[int] = set()
  for _, s in opt_states:
    t = type(s)
    if kind is not None and t is not _KINDS[kind].state:
      raise ValueError(f"{fn}: expected a {_KINDS[kind].state.__name__} for torch's {kind}, got a {t.__name__}")
    covered = _covered(fn, s, lay.treedef, n_leaves)
    if covered is None:
      continue                                     # SGD without momentum: torch keeps nothing
    if seen & set(covered):
      raise ValueError(f"{fn}: expected one optimizer state per parameter, got two for"
                       f" {[lay.names[j] for j in sorted(seen & set(covered))]}")
    seen |= set(covered)
    n = int(np.asarray(s.step))
    if n == 0 and t is not _optim.AdagradState:
      continue
    fields = _tree_fields(s)
    leaves = {f: _field_leaves(fn, s, f, lay.treedef) for f in fields}
    for j in covered:
      entry: dict[str, Any] = {}
      for f in s._fields:
        if f in _SCALAR_FIELDS:
          if f != "step" or _TORCH_STEP[t]:
            entry[f] = torch.tensor(float(np.asarray(getattr(s, f))), dtype=_scalar_dtype())
        elif f in leaves:
          entry[f] = _to_tensor(leaves[f][j])
      out[ids[lay.position[j]]] = entry
  return {"state": out, "param_groups": groups}
