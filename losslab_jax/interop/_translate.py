"""torch optimizer + LR scheduler -> the equivalent losslab_jax transformation.

Per-optimizer facts come from the registry (``ll.optim.torch_twins()``); this module holds only
what is about schedulers and the translation itself.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from losslab_jax import optim as _optim
from losslab_jax import schedules as _schedules
from losslab_jax.interop._naming import layout, names_from_groups
from losslab_jax.interop._util import num, plain, torch_module
from losslab_jax.interop._weights import WeightMap

SUPPORTED_SCHEDULERS = ("StepLR", "MultiStepLR", "ExponentialLR", "ConstantLR", "LinearLR", "PolynomialLR",
                        "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "CyclicLR", "LambdaLR",
                        "MultiplicativeLR", "SequentialLR", "ChainedScheduler")
"""``torch.optim.lr_scheduler`` classes :func:`from_torch_optimizer` converts."""


def supported_optimizers() -> tuple[str, ...]:
  """Class names of the torch optimizers with a registered twin (``ll.optim.torch_twins()``).

  Examples:
    >>> "SGD" in supported_optimizers() and "Lion" in supported_optimizers()
    True
  """
  return tuple(t.torch_name for t in _optim.torch_twins().values())


def twin_of(fn: str, optimizer: Any) -> Any:
  """The registered :class:`~losslab_jax.optim.TorchTwin` of ``optimizer``'s exact class, or refuse."""
  t = type(optimizer)
  root = t.__module__.split(".")[0]
  for twin in _optim.torch_twins().values():
    mod, cls = twin.torch_class.rsplit(".", 1)
    if mod.split(".")[0] != root:
      continue
    try:
      klass = getattr(importlib.import_module(mod), cls)
    except (ImportError, AttributeError):
      continue
    if t is klass:
      return twin
  raise NotImplementedError(
      f"{fn}: expected one of the supported optimizers ({', '.join(supported_optimizers())}), got"
      f" {t.__module__}.{t.__qualname__}; subclasses are not converted (their step may differ)")


def group_kwargs(twin: Any, h: Mapping[str, Any], lr: Any, mom: Any) -> dict[str, Any]:
  """The factory keywords of one torch param group ``h`` (``lr``/``mom`` may be schedules)."""
  kw: dict[str, Any] = {"lr": lr}
  for tkey, key in twin.kwarg_map.items():
    if tkey in h:
      kw[key] = plain(h[tkey])
  if mom is not None:
    if twin.momentum_key is None:
      raise NotImplementedError(f"from_torch_optimizer: the scheduler cycles the momentum, but {twin.torch_name}"
                                " has none to cycle")
    key = twin.kwarg_map[twin.momentum_key]
    kw[key] = mom if twin.momentum_key == "momentum" else (mom, kw[key][1])
  return kw


def group_torch_step(fn: str, optimizer: Any, g: int, twin: Any) -> int | None:
  """torch's step count of param group ``g`` (None where torch keeps none: SGD, Lion, ...)."""
  if not twin.torch_keeps_step:
    return None
  steps = {num(optimizer.state[p]["step"]) for p in optimizer.param_groups[g]["params"]
           if p in optimizer.state and "step" in optimizer.state[p]}
  if len(steps) > 1:
    raise ValueError(f"{fn}: expected the parameters of param group {g} to share one step count, got"
                     f" {sorted(steps)} (some parameters were skipped by torch because their .grad was None);"
                     " losslab_jax keeps one count per group")
  return int(steps.pop()) if steps else 0


def last_epoch(scheduler: Any) -> int:
  """How many times ``scheduler.step()`` ran (a scheduler or its ``state_dict()``)."""
  if isinstance(scheduler, Mapping):
    if "last_epoch" in scheduler:
      return int(scheduler["last_epoch"])
    return last_epoch(scheduler["_schedulers"][0])
  if hasattr(scheduler, "last_epoch"):
    return int(scheduler.last_epoch)
  return last_epoch(scheduler._schedulers[0])  # noqa: SLF001 - ChainedScheduler keeps no last_epoch


def _recover(ok: Callable[[float], bool], approx: float) -> float:
  """A round number ``c`` near ``approx`` with ``ok(c)`` (the user's constructor argument), else ``approx``."""
  for digits in (4, 8, 12):
    c = round(approx, digits)
    if c > 0 and ok(c):
      return c
  return approx


# --- LambdaLR / MultiplicativeLR lambdas ------------------------------------------------------------

# transformers.optimization lambda -> (ll.schedules name, keywords it passes on)
_HF = {
    "_get_constant_schedule_with_warmup_lr_lambda": ("constant_schedule_with_warmup", ("num_warmup_steps",)),
    "_get_linear_schedule_with_warmup_lr_lambda": ("linear_schedule_with_warmup",
                                                   ("num_warmup_steps", "num_training_steps")),
    "_get_cosine_schedule_with_warmup_lr_lambda": ("cosine_schedule_with_warmup",
                                                   ("num_warmup_steps", "num_training_steps", "num_cycles")),
    "_get_cosine_with_hard_restarts_schedule_with_warmup_lr_lambda": (
        "cosine_with_hard_restarts_schedule_with_warmup", ("num_warmup_steps", "num_training_steps", "num_cycles")),
    "_get_polynomial_decay_schedule_with_warmup_lr_lambda": (
        "polynomial_decay_schedule_with_warmup", ("num_warmup_steps", "num_training_steps", "lr_end", "power")),
    "_get_inverse_sqrt_schedule_lr_lambda": ("inverse_sqrt_schedule", ("num_warmup_steps", "timescale")),
    "_get_wsd_scheduler_lambda": ("wsd_schedule", ("num_warmup_steps", "num_decay_steps", "num_stable_steps",
                                                   "warmup_type", "decay_type", "min_lr_ratio", "num_cycles")),
}
_HF_EXTRA = {"_get_polynomial_decay_schedule_with_warmup_lr_lambda": ("lr_init",),
             "_get_cosine_schedule_with_warmup_lr_lambda": ("min_lr_rate",)}


def _hf_schedule(fn: Any, base: float) -> Any:
  """The ll.schedules equivalent of a Hugging Face transformers schedule lambda, or None."""
  if not isinstance(fn, functools.partial) or fn.args:
    return None
  func = fn.func
  name = getattr(func, "__name__", "")
  if name not in _HF or not getattr(func, "__module__", "").startswith("transformers."):
    return None
  target, keys = _HF[name]
  try:
    defaults = {k: p.default for k, p in inspect.signature(func).parameters.items()
                if p.default is not inspect.Parameter.empty}
  except (TypeError, ValueError):
    return None
  kw = {**defaults, **fn.keywords}
  if set(kw) - set(keys) - set(_HF_EXTRA.get(name, ())):
    return None                                        # a transformers version with more knobs: not ours
  args = {k: kw[k] for k in keys if k in kw}
  if name == "_get_cosine_schedule_with_warmup_lr_lambda" and "min_lr_rate" in fn.keywords:
    target, args = "cosine_with_min_lr_schedule_with_warmup", dict(args, min_lr_rate=kw["min_lr_rate"])
  elif name == "_get_cosine_schedule_with_warmup_lr_lambda" and kw.get("min_lr_rate", 0.0) != 0.0:
    return None
  factory = getattr(_schedules, target, None)
  if factory is None:
    return None
  if name == "_get_polynomial_decay_schedule_with_warmup_lr_lambda":
    lr_init = float(kw["lr_init"])                      # transformers divides by it; LambdaLR multiplies by base
    s = factory(lr_init, **args)
    if base == lr_init:
      return s
    return lambda count: s(count) * (base / lr_init)
  return factory(base, **args)


def _probe_counts(position: int) -> list[int]:
  return sorted({0, 1, 2, 3, 10, 100, max(position - 1, 0), position, position + 1, position + 2})


def _lambda_schedule(fn_name: str, sched: Any, g: int, kind: str, base: float) -> Any:
  """LambdaLR/MultiplicativeLR group ``g``: recognised (transformers) or trial-traced, else refused."""
  s = _schedules
  lam = sched.lr_lambdas[g]
  label = getattr(lam, "__qualname__", None) or getattr(getattr(lam, "func", None), "__name__", None) or repr(lam)
  what = f"{kind}.lr_lambdas[{g}] ({label})"
  sched_fn = _hf_schedule(lam, base) if kind == "LambdaLR" else None
  origin = "the transformers schedule"
  if sched_fn is None:
    origin = "the lambda traced by jax"
    try:
      jax.eval_shape(lambda c: jnp.asarray(lam(c), jnp.float32), jax.ShapeDtypeStruct((), jnp.float32))
    except Exception as exc:  # noqa: BLE001 - any failure to trace is the user's lambda; say which
      raise ValueError(
          f"{fn_name}: {what} cannot be traced by jax ({type(exc).__name__}: {str(exc).splitlines()[0]}). The"
          " converted schedule runs under jit with a traced step count, so Python control flow on it (if/else,"
          " min/max, math.*) fails there; rewrite the lambda with jnp operations (jnp.where, jnp.minimum, jnp.cos)"
          " or use an ll.schedules equivalent") from None
    sched_fn = s.lambda_lr(base, lam) if kind == "LambdaLR" else s.multiplicative_lr(base, lam)
  # the converted schedule must give torch's numbers: torch calls the lambda with Python ints
  pos = last_epoch(sched)
  for k in _probe_counts(pos):
    try:
      if kind == "LambdaLR":
        want = base * float(lam(k))
      else:
        want = base * math.prod(float(lam(i)) for i in range(1, k + 1))
    except Exception:  # noqa: BLE001 - a lambda defined only up to some step: torch would fail there too
      if k <= pos + 1:
        raise
      continue
    got = float(sched_fn(jnp.asarray(k, jnp.int32)))
    if not math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-12 * max(abs(base), 1.0)):
      raise ValueError(f"{fn_name}: {what} converted through {origin} gives lr {got!r} at step {k}, torch gives"
                       f" {want!r} (the lambda treats a float step count differently from an int one); rewrite it"
                       " with jnp operations that do not depend on the count's type")
  return sched_fn


# --- schedulers -----------------------------------------------------------------------------------


def schedule_of(fn: str, sched: Any, g: int) -> tuple[Any, Any]:
  """(lr schedule, momentum schedule or None) of param group ``g`` for a torch scheduler."""
  name = _scheduler_name(fn, sched)
  if name in ("SequentialLR", "ChainedScheduler"):
    return _composite_schedule(fn, sched, g, name), None
  if name == "OneCycleLR":
    return _one_cycle_schedules(sched, g)
  if name == "CyclicLR":
    return _cyclic_schedules(sched, g)
  base = float(sched.base_lrs[g])
  simple = _simple_schedule(sched, name, base)
  if simple is not None:
    return simple, None
  return _lambda_schedule(fn, sched, g, name, base), None      # LambdaLR, MultiplicativeLR


def _scheduler_name(fn: str, sched: Any) -> str:
  """The name in ``SUPPORTED_SCHEDULERS`` of ``sched``'s class, or NotImplementedError (with a hint for plateau)."""
  S = torch_module().optim.lr_scheduler  # noqa: N806
  t = type(sched)
  name = next((n for n in SUPPORTED_SCHEDULERS if t is getattr(S, n, None)), None)
  if name is None:
    hint = ""
    if t is getattr(S, "ReduceLROnPlateau", None):
      hint = ("; ReduceLROnPlateau's next lr depends on the metric: convert with scheduler=None (the group's"
              " current lr is used) and chain ll.optim.reduce_lr_on_plateau(..., base_lr=that lr) yourself")
    raise NotImplementedError(f"{fn}: expected one of the supported schedulers ({', '.join(SUPPORTED_SCHEDULERS)}),"
                              f" got {t.__module__}.{t.__qualname__}{hint}")
  return name


def _composite_schedule(fn: str, sched: Any, g: int, name: str) -> Any:
  """The lr schedule of a SequentialLR or ChainedScheduler, from its children's (which may not cycle momentum)."""
  s = _schedules
  children = [schedule_of(fn, c, g) for c in sched._schedulers]  # noqa: SLF001
  if any(m is not None for _, m in children):
    raise NotImplementedError(f"{fn}: a {name} whose schedulers cycle the momentum is not supported")
  lrs = [lr for lr, _ in children]
  if name == "SequentialLR":
    return s.sequential_lr(lrs, list(sched._milestones))  # noqa: SLF001
  return s.chained(lrs, lr=float(sched._schedulers[0].base_lrs[g]))  # noqa: SLF001


def _one_cycle_schedules(sched: Any, g: int) -> tuple[Any, Any]:
  """(lr, momentum or None) of a OneCycleLR, its constructor arguments recovered from what torch stores."""
  s = _schedules
  group = sched.optimizer.param_groups[g]
  total = int(sched.total_steps)
  phases = sched._schedule_phases  # noqa: SLF001
  pct = _recover(lambda p: float(p * total) - 1 == phases[0]["end_step"], (phases[0]["end_step"] + 1) / total)
  anneal: Any = getattr(sched, "_anneal_func_type", "cos")
  initial, peak, low = (num(group[k]) for k in ("initial_lr", "max_lr", "min_lr"))
  d = _recover(lambda c: peak / c == initial, peak / initial)
  d_f = _recover(lambda c: initial / c == low, initial / low)
  three = len(phases) == 3
  lr = s.one_cycle_lr(peak, total, pct, anneal, d, d_f, three)
  mom = None
  if sched.cycle_momentum:
    mom = s.one_cycle_momentum(total, num(group["base_momentum"]), num(group["max_momentum"]), pct, anneal, three)
  return lr, mom


def _cyclic_schedules(sched: Any, g: int) -> tuple[Any, Any]:
  """(lr, momentum or None) of a CyclicLR."""
  s = _schedules
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


def _simple_schedule(sched: Any, name: str, base: float) -> Any:
  """The lr schedule of a scheduler whose arguments torch keeps as they were given, or None for another."""
  s = _schedules
  simple = {
      "StepLR": lambda: s.step_lr(base, int(sched.step_size), float(sched.gamma)),
      "MultiStepLR": lambda: s.multistep_lr(base, sorted(sched.milestones.elements()), float(sched.gamma)),
      "ExponentialLR": lambda: s.exponential_lr(base, float(sched.gamma)),
      "ConstantLR": lambda: s.constant_lr(base, float(sched.factor), int(sched.total_iters)),
      "LinearLR": lambda: s.linear_lr(base, float(sched.start_factor), float(sched.end_factor),
                                      int(sched.total_iters)),
      "PolynomialLR": lambda: s.polynomial_lr(base, int(sched.total_iters), float(sched.power)),
      "CosineAnnealingLR": lambda: s.cosine_annealing_lr(base, sched.T_max, float(sched.eta_min)),
      "CosineAnnealingWarmRestarts": lambda: s.cosine_annealing_warm_restarts(base, int(sched.T_0), int(sched.T_mult),
                                                                              float(sched.eta_min)),
  }
  return simple[name]() if name in simple else None


def _shift(schedule: Any, offset: int) -> Any:
  """``count -> schedule(count + offset)``."""
  if schedule is None or offset == 0:
    return schedule

  def shifted(count):
    c = jnp.asarray(count)
    return schedule(c + jnp.asarray(offset, c.dtype))

  return shifted


def _cadence(fn: str, g: int, n: int | None, pos: int, steps_per_epoch: int | None, twin: Any) -> tuple[int, int]:
  """(steps per scheduler step, count offset) for group ``g``: proven, given, or refused."""
  if steps_per_epoch is None:
    if n is None:
      raise ValueError(
          f"{fn}: {twin.torch_name} keeps no step count, so whether the scheduler (last_epoch={pos}) is stepped"
          " after every optimizer step or once per epoch cannot be read from torch; pass steps_per_epoch=1 (per"
          " step) or steps_per_epoch=<batches per epoch>")
    if n != pos:
      raise ValueError(
          f"{fn}: the scheduler's position (last_epoch={pos}) and param group {g}'s optimizer step count ({n})"
          " disagree: if scheduler.step() runs once per epoch, pass steps_per_epoch=<batches per epoch>; if it"
          " runs after every optimizer step and was created later, pass steps_per_epoch=1")
    if n == 0:
      raise ValueError(
          f"{fn}: neither the scheduler nor the optimizer has stepped, so the scheduler's cadence cannot be read"
          " from torch; pass steps_per_epoch=1 if scheduler.step() follows every optimizer.step(), or"
          " steps_per_epoch=<batches per epoch> if it runs once per epoch")
    return 1, 0
  spe = int(steps_per_epoch)
  if spe != steps_per_epoch or spe < 1:
    raise ValueError(f"{fn}: expected steps_per_epoch to be a positive integer, got {steps_per_epoch!r}")
  if spe == 1:
    return 1, pos - (pos if n is None else n)
  if n is None:
    raise ValueError(f"{fn}: {twin.torch_name} keeps no step count: with a per-epoch scheduler pass step_count="
                     "<number of optimizer.step() calls so far>")
  if not pos * spe <= n < (pos + 1) * spe:
    raise ValueError(
        f"{fn}: with steps_per_epoch={spe}, a scheduler at last_epoch={pos} fits an optimizer step count in"
        f" [{pos * spe}, {(pos + 1) * spe}), got {n} (param group {g}); was the scheduler created after the first"
        " epoch, or is steps_per_epoch wrong?")
  return spe, 0


def _check_attached(fn: str, optimizer: Any, scheduler: Any) -> None:
  if getattr(scheduler, "optimizer", optimizer) is not optimizer:
    raise ValueError(f"{fn}: expected a scheduler attached to `optimizer`, got one attached to another optimizer")


def from_torch_optimizer(optimizer: Any, scheduler: Any = None, *, param_names: Sequence[str] | None = None,
                         steps_per_epoch: int | None = None, weight_map: WeightMap | None = None,
                         step_count: int | None = None) -> optax.GradientTransformationExtraArgs:
  """The losslab_jax transformation equivalent to a torch optimizer (and its LR scheduler).

  Each param group's class and hyperparameters become the registered twin
  (``ll.optim.torch_twins()``): torch's names and meanings carry over one to one. One group
  gives that optimizer; several give :func:`~losslab_jax.optim.param_groups` with labels
  ``"group0"``, ``"group1"``, ... assigned leaf by leaf (see the module docstring for how
  leaves are paired with torch's parameters; an ambiguous pairing is refused when ``tx.init``
  runs).

  A scheduler becomes each group's ``lr`` schedule (and ``betas[0]``/``momentum`` schedule when
  OneCycleLR or CyclicLR cycle the momentum) as a function of the transformation's update count,
  which :func:`optimizer_state_from_torch` sets to torch's optimizer step count :math:`n`. With
  the scheduler at position :math:`L` (``last_epoch``) and :math:`s` optimizer steps per scheduler
  step (``steps_per_epoch``):

  .. math::
     \\text{lr}(c) = \\begin{cases} \\text{sched}(c + L - n) & s = 1 \\\\
                                   \\text{sched}(\\lfloor c / s \\rfloor) & s > 1,\\ L s \\le n < (L + 1) s
                     \\end{cases}

  so the next update uses the lr torch's next ``optimizer.step()`` would use and every later one
  follows torch's loop (``ll.schedules.per_epoch`` for :math:`s > 1`).

  Args:
    optimizer: a torch optimizer whose exact class has a registered twin (fresh, or in the middle
      of a run: the group lrs and momenta are read as they are now).
    scheduler: ``None`` (each group's current ``lr`` is a constant), or a scheduler of a class in
      :data:`SUPPORTED_SCHEDULERS` attached to ``optimizer``.
    param_names: with several param groups, the name of each torch parameter in torch's order:
      leaf names of the params tree (see :func:`torch_param_names`), or torch names with
      ``weight_map``. By default the names kept in the groups, or (with ``weight_map``) the
      optimizer's parameters matched by identity, or else shapes where they identify each
      parameter.
    steps_per_epoch: optimizer steps per ``scheduler.step()``: ``1`` when the scheduler is
      stepped after every optimizer step, the number of batches per epoch when once per epoch.
      Required unless torch's counters prove per-step stepping (``last_epoch`` equals the
      optimizer's step count and is positive).
    weight_map: from :func:`copy_weights`: the params tree is the nnx module's
      ``nnx.state(model, nnx.Param)``, and groups are assigned through it.
    step_count: optimizer steps so far, for optimizers torch keeps no count for (SGD, Lion)
      with a per-epoch scheduler (or a per-step one created after the first step).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Raises:
    NotImplementedError: an unsupported optimizer or scheduler class (the message lists the
      supported ones), or a SequentialLR/ChainedScheduler that cycles the momentum.
    ValueError: the scheduler belongs to another optimizer; the scheduler's cadence cannot be
      proven and ``steps_per_epoch`` is not given, or contradicts the counters; a LambdaLR /
      MultiplicativeLR lambda that jax cannot trace (or that gives other numbers traced); a
      group's parameters have different torch step counts; (at ``init``) params that cannot be
      paired with torch's parameters.

  Notes:
    Torch twin: ``torch.optim.<Class>`` with ``torch.optim.lr_scheduler.<Scheduler>``. ``foreach``,
    ``fused``, ``capturable`` and ``differentiable`` select torch kernels and are ignored (the
    numbers follow torch's single-tensor path). Hugging Face transformers' ``get_*_schedule*``
    lambdas are recognised and become the ``ll.schedules`` functions of the same names; other
    lambdas (and a CyclicLR ``scale_fn``) are reused as they are and must trace under jit.
    Parity: float64 <= 1e-10, float32 <= 1e-5 for 50 steps continued in JAX after 50 torch steps
    (``tests/interop/test_torch.py``).

  Examples:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(3))
    >>> opt = torch.optim.AdamW([w], lr=1e-3, weight_decay=0.1)
    >>> tx = from_torch_optimizer(opt)  # ll.optim.adamw(lr=1e-3, weight_decay=0.1)
    >>> sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    >>> tx = from_torch_optimizer(opt, sched, steps_per_epoch=100)  # stepped once per 100 batches
  """
  fn = "from_torch_optimizer"
  twin = twin_of(fn, optimizer)
  groups = optimizer.param_groups
  pos = 0
  if scheduler is not None:
    _check_attached(fn, optimizer, scheduler)
    pos = last_epoch(scheduler)
  txs = []
  for g, h in enumerate(groups):
    lr, mom = num(h["lr"]), None
    if scheduler is not None:
      lr, mom = schedule_of(fn, scheduler, g)
      n = group_torch_step(fn, optimizer, g, twin)
      if n is None and step_count is not None:
        n = int(step_count)
      spe, offset = _cadence(fn, g, n, pos, steps_per_epoch, twin)
      if spe > 1:
        lr = _schedules.per_epoch(lr, spe)
        mom = None if mom is None else _schedules.per_epoch(mom, spe)
      lr, mom = _shift(lr, offset), _shift(mom, offset)
    txs.append(twin.make(group_kwargs(twin, h, lr, mom), optimizer))
  if len(txs) == 1:
    return txs[0]

  sizes = [len(h["params"]) for h in groups]
  group_of = [g for g, k in enumerate(sizes) for _ in range(k)]
  shapes = [tuple(p.shape) for h in groups for p in h["params"]]
  if weight_map is not None:
    names = param_names if param_names is not None else weight_map.param_names_of(optimizer)
  else:
    names = param_names if param_names is not None else names_from_groups(groups)

  def labels(tree):
    lay = layout(fn, tree, len(group_of), param_names=names, weight_map=weight_map, torch_shapes=shapes)
    return jax.tree.unflatten(lay.treedef, [f"group{group_of[lay.position[j]]}" for j in range(len(lay.leaves))])

  return _optim.param_groups({f"group{g}": tx for g, tx in enumerate(txs)}, labels)
