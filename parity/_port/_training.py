"""``parity.compare_training``: the same batches through a torch training loop and a JAX one, step by step.

The engine is in two halves that also serve the whole-model parity cases
(:mod:`parity.cases.training`): :func:`torch_steps` runs torch's loop and :func:`jax_steps` the
JAX one; each returns the initial parameters and, per step, the loss, the raw gradients, the
update and the new parameters, all by torch parameter name in torch's layout.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from parity._case import DEFAULT_RTOL
from parity._compare import FLOOR_FRACTION, HISTORY_FRACTION, array_error
from parity._port._report import Divergence, StepRecord, TrainingReport, Trap
from parity._port._weights import WeightMapLike, copy_weights

INTERVALS = ("step", "epoch", "plateau")
QUANTITY_ORDER = ("loss", "grad", "update", "param", "buffer")
UPDATE_ROUNDING = 4.0  # ulps of the parameter an applied update may carry from rounding, per side


@dataclasses.dataclass
class Run:
  """One side's run: ``params[0]`` the initial parameters, then per step ``k``: ``loss[k]`` on batch
  ``k``, ``grads[k]`` (raw, before clipping), ``updates[k] = params[k + 1] - params[k]``, and
  ``lrs[k]`` (torch side: group 0's lr used by step ``k``; JAX side: empty), ``norms[k]`` (torch:
  the global gradient norm before clipping), ``buffers[k]`` the buffers (BatchNorm running
  statistics) after ``k`` steps, by torch buffer name."""

  params: list[dict[str, np.ndarray]]
  loss: list[float]
  grads: list[dict[str, np.ndarray]]
  updates: list[dict[str, np.ndarray]]
  lrs: list[float] = dataclasses.field(default_factory=list)
  norms: list[float] = dataclasses.field(default_factory=list)
  buffers: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)


def _batch_tuple(batch: Any) -> tuple:
  if isinstance(batch, (tuple, list)):
    return tuple(batch)
  return (batch,)


def _np(x: Any) -> np.ndarray:
  if hasattr(x, "detach"):
    x = x.detach().cpu().numpy()
  return np.asarray(x)


def _cast(a: np.ndarray, dtype: str) -> np.ndarray:
  return a.astype(dtype) if a.dtype.kind == "f" else a


def _torch_named(model) -> dict[str, np.ndarray]:
  return {n: p.detach().cpu().numpy().copy() for n, p in model.named_parameters()}


def _torch_buffers(model) -> dict[str, np.ndarray]:
  return {n: b.detach().cpu().numpy().copy() for n, b in model.named_buffers()
          if not n.endswith("num_batches_tracked")}


# --- torch --------------------------------------------------------------------------------------


def torch_steps(model: Any, optimizer: Any, loss_fn: Callable[[Any, tuple], Any], batches: Sequence[Any], *,
                dtype: str, scheduler: Any = None, scheduler_interval: str = "step",
                steps_per_epoch: int | None = None, clip_grad_norm: float | None = None,
                last_update: bool = True) -> Run:
  """torch's loop over ``batches``: ``zero_grad; loss_fn(model, batch).backward(); [clip_grad_norm_];
  [scheduler.step(loss) if plateau]; optimizer.step(); [scheduler.step() per step or per epoch]``.

  ``last_update=False`` stops after the last batch's loss and gradients (no optimizer step).
  """
  import torch

  if scheduler_interval not in INTERVALS:
    raise ValueError(f"torch_steps: expected scheduler_interval in {INTERVALS}, got {scheduler_interval!r}")
  every = 1
  if scheduler_interval == "epoch":
    if not (isinstance(steps_per_epoch, int) and steps_per_epoch >= 1):
      raise ValueError(f"torch_steps: scheduler_interval='epoch' needs steps_per_epoch >= 1, got {steps_per_epoch!r}")
    every = steps_per_epoch
  run = Run([_torch_named(model)], [], [], [], buffers=[_torch_buffers(model)])
  params = dict(model.named_parameters())
  for k, batch in enumerate(batches):
    tb = tuple(torch.from_numpy(np.array(_cast(_np(b), dtype), copy=True)) for b in _batch_tuple(batch))
    optimizer.zero_grad()
    loss = loss_fn(model, tb)
    loss.backward()
    run.loss.append(float(loss.detach()))
    run.grads.append({n: (p.grad.detach().cpu().numpy().copy() if p.grad is not None
                          else np.zeros(tuple(p.shape), dtype=dtype)) for n, p in params.items()})
    if not last_update and k == len(batches) - 1:
      break
    if clip_grad_norm is not None:
      run.norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)))
    if scheduler is not None and scheduler_interval == "plateau":
      scheduler.step(float(loss.detach()))
    run.lrs.append(float(optimizer.param_groups[0]["lr"]))
    optimizer.step()
    if scheduler is not None and scheduler_interval != "plateau" and (k + 1) % every == 0:
      scheduler.step()
    new = _torch_named(model)
    run.updates.append({n: new[n] - run.params[-1][n] for n in new})
    run.params.append(new)
    run.buffers.append(_torch_buffers(model))
  return run


# --- JAX ----------------------------------------------------------------------------------------


def make_jax_step(graphdef: Any, tx: Any, loss_fn: Callable[[Any, tuple], Any]):
  """``(grad_fn, update_fn)``, both jitted.

  ``grad_fn(params, rest, batch) -> (loss, grads, rest)``: the loss of ``loss_fn(model, batch)``
  with the model merged from ``graphdef``, its Param state ``params`` and the rest of its state
  ``rest`` (BatchNorm statistics, RNG counters), and the rest as the forward pass left it.
  ``update_fn(grads, opt_state, params, loss) -> (new_params, opt_state)``.
  """
  import jax
  import optax
  from flax import nnx

  tx = optax.with_extra_args_support(tx)

  @jax.jit
  def grad_fn(params, rest, batch):
    def f(p, r):
      r = jax.tree_util.tree_map(lambda x: x, r)  # fresh variables in this trace: BatchNorm writes to them
      model = nnx.merge(graphdef, p, r)
      value = loss_fn(model, batch)
      _, _, new_rest = nnx.split(model, nnx.Param, ...)
      return value, new_rest

    (value, new_rest), grads = jax.value_and_grad(f, has_aux=True)(params, rest)
    return value, grads, new_rest

  @jax.jit
  def update_fn(grads, opt_state, params, value):
    updates, opt_state = tx.update(grads, opt_state, params, value=value)
    return optax.apply_updates(params, updates), opt_state

  return grad_fn, update_fn


def jax_steps(nnx_model: Any, tx: Any, loss_fn: Callable[[Any, tuple], Any] | None, batches: Sequence[Any], *,
              weight_map: WeightMapLike, dtype: str, opt_state: Any = None,
              teacher_grads: Sequence[Mapping[str, np.ndarray]] | None = None,
              jax_batch: Callable[[tuple], tuple] | None = None, step_fns: Any = None,
              last_update: bool = True, buffer_names: Sequence[str] | None = None) -> Run:
  """The JAX loop: ``value_and_grad`` of ``loss_fn(model, batch)``, then ``tx.update`` and
  ``optax.apply_updates`` (``value=loss`` reaches transformations that take it).

  ``teacher_grads[k]`` (torch-named, torch layout), when given, replaces step ``k``'s own
  gradients in the update (teacher forcing). ``step_fns``: a cached :func:`make_jax_step` result.
  The model itself is left untouched (the run works on a split copy of its state).
  """
  import jax.numpy as jnp
  from flax import nnx

  graphdef, params, rest = nnx.split(nnx_model, nnx.Param, ...)
  if step_fns is None and loss_fn is None:
    raise ValueError("jax_steps: expected loss_fn or step_fns, got neither")
  grad_fn, update_fn = step_fns or make_jax_step(graphdef, tx, loss_fn)  # type: ignore[arg-type]  # checked above
  if opt_state is None:
    opt_state = tx.init(params)
  to_torch = weight_map.tree_to_torch
  buffer_names = list(buffer_names) if buffer_names is not None else list(getattr(weight_map, "buffer_names", []))
  run = Run([to_torch(params)], [], [], [], buffers=[_nnx_buffers(rest, buffer_names, weight_map)])
  for k, batch in enumerate(batches):
    arrays = tuple(_cast(_np(b), dtype) for b in _batch_tuple(batch))
    if jax_batch is not None:
      arrays = tuple(_batch_tuple(jax_batch(arrays)))
    jb = tuple(jnp.asarray(a) for a in arrays)
    value, grads, rest = grad_fn(params, rest, jb)
    run.loss.append(float(value))
    run.grads.append(to_torch(grads))
    if not last_update and k == len(batches) - 1:
      break
    used = grads
    if teacher_grads is not None:
      used = weight_map.tree_from_torch(teacher_grads[k], dtype=jnp.dtype(dtype))
    params, opt_state = update_fn(used, opt_state, params, value)
    new = to_torch(params)
    run.updates.append({n: new[n] - run.params[-1][n] for n in new})
    run.params.append(new)
    run.buffers.append(_nnx_buffers(rest, buffer_names, weight_map))
  return run


def _nnx_buffers(rest: Any, names: Sequence[str], weight_map: Any) -> dict[str, np.ndarray]:
  """The nnx state's values at the weight map's buffer paths (BatchNorm ``mean``/``var``), by torch name."""
  from flax import nnx

  pure = nnx.to_pure_dict(rest)
  out = {}
  for name in names:
    node = pure
    try:
      for k in weight_map.nnx_path(name):
        node = node[k]
    except (KeyError, TypeError, IndexError):
      continue
    out[name] = np.asarray(node)
  return out


# --- comparison ---------------------------------------------------------------------------------


FLOAT32_TRAINING_RTOL = 3e-4
"""Default float32 tolerance of gradients, updates, new values and buffers (the loss keeps 1e-5).

Measured by parity's whole-model ``training`` case (``python -m parity drift``): on identical
weights and data, float32 raw gradients of two correct implementations differ by up to 1.4e-4
already at step 0 (batch-sum cancellation: entries just above the 1e-3 floor with condition
numbers ~2e3; torch float32 is itself up to 8e-5 from float64), and parameters drift to <= 5e-5
in 100 steps; 3e-4 is 2x the worst measured. Updates get :data:`FLOAT32_UPDATE_RTOL`. float64
keeps 1e-10 everywhere."""

FLOAT32_UPDATE_RTOL = 1e-3
"""Default float32 tolerance of updates end to end: measured 5.3e-4 (the transformer block of
``tests/port``, AdamW, step 1, ``ln2.bias``; 2.2e-4 with ``teacher_forcing=True``, the same
gradients on both sides): Adam divides each first moment by its own RMS, so an entry whose moment
nearly cancels (``0.09 g_0 + 0.1 g_1`` with opposite signs) turns float32 rounding into a 5e-4
relative update difference; 1e-3 is 2x that."""


def _tolerances(rtol: Any, dtype: str) -> dict[str, float]:
  base = DEFAULT_RTOL.get(dtype, 1e-5)
  if rtol is None:
    if np.dtype(dtype).itemsize < 8:
      return {q: (base if q == "loss" else max(base, FLOAT32_UPDATE_RTOL if q == "update" else FLOAT32_TRAINING_RTOL))
              for q in QUANTITY_ORDER}
    return {q: base for q in QUANTITY_ORDER}
  if isinstance(rtol, Mapping):
    unknown = set(rtol) - set(QUANTITY_ORDER)
    if unknown:
      raise ValueError(f"compare_training: expected rtol keys among {QUANTITY_ORDER}, got {sorted(unknown)}")
    return {q: float(rtol.get(q, base)) for q in QUANTITY_ORDER}
  return {q: float(rtol) for q in QUANTITY_ORDER}


def compare_runs(jax_run: Run, torch_run: Run, tol: Mapping[str, float], dtype: str) -> list[StepRecord]:
  """Per-step relative errors of every quantity (module docstring of :mod:`parity._port._training`)."""
  eps = float(np.finfo(np.dtype(dtype)).eps) if np.dtype(dtype).kind == "f" else 0.0
  names = list(torch_run.params[0])
  hist = {n: np.abs(torch_run.params[0][n]).astype(np.float64) for n in names}
  loss_hist = grad_hist = 0.0
  records = []
  for k in range(len(torch_run.loss)):
    errors: dict[str, dict[str, float]] = {"grad": {}, "update": {}, "param": {}, "buffer": {}}
    grad_hist = max(grad_hist, _global_max(torch_run.grads[k]))
    g_floor = FLOOR_FRACTION * grad_hist
    for n in names:
      errors["grad"][n] = _rel(jax_run.grads[k].get(n), torch_run.grads[k][n], g_floor)
    if k < len(torch_run.updates):
      u_floor = FLOOR_FRACTION * _global_max(torch_run.updates[k])
      for n in names:
        old = np.abs(torch_run.params[k][n]).astype(np.float64)
        new = torch_run.params[k + 1][n]
        floor = np.maximum(UPDATE_ROUNDING * eps * np.maximum(old, np.abs(new)) / tol["update"], u_floor)
        errors["update"][n] = _rel(jax_run.updates[k].get(n), torch_run.updates[k][n], floor)
        hist[n] = np.maximum(hist[n], np.where(np.isfinite(new), np.abs(new), 0.0))
        errors["param"][n] = _rel(jax_run.params[k + 1].get(n), new, HISTORY_FRACTION * hist[n])
      if k + 1 < len(torch_run.buffers) and k + 1 < len(jax_run.buffers):
        for n, b in torch_run.buffers[k + 1].items():
          if n in jax_run.buffers[k + 1]:
            errors["buffer"][n] = _rel(jax_run.buffers[k + 1][n], b)
    if np.isfinite(torch_run.loss[k]):
      loss_hist = max(loss_hist, abs(torch_run.loss[k]))
    loss_rel = array_error(np.float64(jax_run.loss[k]), np.float64(torch_run.loss[k]),
                           floor_extra=FLOOR_FRACTION * loss_hist).rel
    records.append(StepRecord(k, loss_rel, torch_run.loss[k], jax_run.loss[k], errors))
  return records


def _global_max(named: Mapping[str, np.ndarray]) -> float:
  """The largest finite magnitude over every array of ``named`` (0 when none)."""
  m = 0.0
  for a in named.values():
    a = np.abs(np.asarray(a, np.float64))
    a = a[np.isfinite(a)]
    if a.size:
      m = max(m, float(a.max()))
  return m


def _rel(a: Any, b: np.ndarray, floor: Any = None) -> float:
  if a is None:
    return math.inf
  a = np.asarray(a)
  if a.shape != b.shape:
    return math.inf
  return array_error(a, b, floor_extra=floor).rel


def first_divergence(records: Sequence[StepRecord], tol: Mapping[str, float], names: Sequence[str]
                     ) -> Divergence | None:
  """The first (step, quantity, parameter) beyond tolerance: loss, then gradients, updates, new values."""
  for r in records:
    if not r.loss_rel <= tol["loss"]:
      return Divergence("loss", r.loss_rel, tol["loss"], step=r.step)
    for q in ("grad", "update", "param", "buffer"):
      for n in (names if q != "buffer" else r.errors[q]):
        e = r.errors[q].get(n)
        if e is not None and not e <= tol[q]:
          return Divergence(q, e, tol[q], step=r.step, parameter=n)
  return None


def _initial_divergence(jax_run: Run, torch_run: Run, tol: float) -> Divergence | None:
  for n, b in torch_run.params[0].items():
    e = _rel(jax_run.params[0].get(n), b)
    if not e <= tol:
      return Divergence("param", e, tol, step=0, parameter=n,
                        note="the initial weights already differ: copy torch's weights into the nnx model "
                             "(parity.copy_weights) before comparing")
  return None


def _uniform_ratio(k: int, jax_run: Run, torch_run: Run) -> float | None:
  """The common ratio jax/torch of every update entry at step ``k`` when the updates differ by one
  scalar factor (a learning-rate or clipping-factor difference), else None."""
  ratios = []
  for n, t in torch_run.updates[k].items():
    j = jax_run.updates[k].get(n)
    if j is None or j.shape != t.shape:
      return None
    big = np.abs(t) > 1e-3 * np.max(np.abs(t)) if t.size else np.zeros(0, bool)
    if big.any():
      ratios.append(np.asarray(j, np.float64)[big] / np.asarray(t, np.float64)[big])
  if not ratios:
    return None
  r = np.concatenate(ratios)
  med = float(np.median(r))
  if not np.isfinite(med) or med == 0:
    return None
  if np.max(np.abs(r - med)) <= 1e-3 * abs(med - 1) + 1e-12 * abs(med):
    return med
  return None


def _running_var_trap(first: Divergence, jax_run: Run, torch_run: Run, torch_model: Any) -> list[Trap]:
  """A running_var that differs because torch averages the unbiased batch variance and flax the biased one:
  the two running-average increments differ by the uniform factor n / (n - 1)."""
  name = first.parameter or ""
  if not name.endswith("running_var"):
    return []
  k = first.step or 0
  mod = torch_model.get_submodule(name.rpartition(".")[0])
  m = getattr(mod, "momentum", None)
  if m is None:
    return []
  t_old, t_new = torch_run.buffers[k][name], torch_run.buffers[k + 1][name]
  j_old, j_new = jax_run.buffers[k][name], jax_run.buffers[k + 1][name]
  unbiased = (t_new - (1 - m) * t_old) / m
  biased = (j_new - (1 - m) * j_old) / m  # flax momentum = 1 - m when the momenta are converted right
  ratio = unbiased / biased
  r = float(np.median(ratio))
  if not (r > 1 and np.allclose(ratio, r, rtol=1e-6)):
    return []
  n = 1 / (r - 1) + 1
  if abs(n - round(n)) > 1e-4 * n:
    return []
  return [Trap("batchnorm_running_var", name.rpartition(".")[0],
               f"step {k}: torch's running_var averages the unbiased batch variance, flax's the biased one: "
               f"the increments differ by n/(n-1) = {r:.10g} (n = {round(n)} values per channel). Training "
               "outputs are unaffected; eval-mode outputs after training differ. flax's BatchNorm has no "
               "unbiased option: use a BatchNorm that stores var * n/(n-1), or compare in training mode only.",
               confirmed=True)]


def _training_traps(first: Divergence | None, records, jax_run: Run, torch_run: Run,
                    clip_grad_norm: float | None, torch_model: Any = None) -> list[Trap]:
  """Name a uniform-factor update difference (a schedule shifted by a step, clipping without +1e-6) or a
  running variance that differs by n/(n-1)."""
  if first is not None and first.quantity == "buffer" and torch_model is not None:
    return _running_var_trap(first, jax_run, torch_run, torch_model)
  if first is not None and first.quantity in ("update", "param") and first.parameter is not None:
    k = first.step or 0
    raw = np.asarray(torch_run.grads[k][first.parameter])
    eps = float(np.finfo(raw.dtype if raw.dtype.kind == "f" else np.float64).eps)
    g = np.abs(raw.astype(np.float64))
    scale = _global_max(torch_run.grads[k])
    if g.size and scale > 0 and float(g.max()) <= 1e4 * eps * scale:
      return [Trap("noise_gradient", first.parameter,
                   f"the torch gradient of {first.parameter} at step {k} is rounding noise (max {float(g.max()):.1e} "
                   f"against {scale:.1e} elsewhere: zero in exact arithmetic, e.g. an attention key bias); a "
                   "normalising optimizer turns that noise into updates that differ in any two implementations: "
                   f"pass ignore=[{first.parameter!r}] (or remove the parameter)", confirmed=True)]
  if first is None or first.quantity not in ("update", "param") or (first.step or 0) >= len(torch_run.updates):
    return []
  k = first.step or 0
  ratio = _uniform_ratio(k, jax_run, torch_run)
  if ratio is None:
    return []
  lrs = torch_run.lrs
  close = lambda a, b: abs(a - b) <= 1e-6 * abs(b)  # noqa: E731
  if k < len(lrs) and lrs[k] and not close(ratio, 1.0):
    hits = [j for j in range(len(lrs)) if j != k and close(ratio, lrs[j] / lrs[k])]
    if hits:
      j = min(hits, key=lambda j: (abs(j - k), j))
      if j == k - 1:
        how = "the JAX schedule runs one step late"
      elif j == k + 1:
        how = "the JAX schedule runs one step early"
      else:
        how = (f"the JAX schedule is {abs(j - k)} steps {'ahead' if j > k else 'behind'} (a scheduler stepped once "
               "per epoch converted as if stepped per batch, or a wrong steps_per_epoch?)")
      return [Trap("schedule_shift", "", f"at step {k} every update is {ratio:.6g} x torch's, which is torch's lr of "
                   f"step {j} over that of step {k}: {how}", confirmed=True)]
  if clip_grad_norm is not None and k < len(torch_run.norms):
    norm = torch_run.norms[k]
    if norm > clip_grad_norm and close(ratio, (norm + 1e-6) / norm):
      return [Trap("clip_eps", "", f"at step {k} (gradient norm {norm:.6g} > max_norm {clip_grad_norm:g}) every "
                   f"update is (norm + 1e-6) / norm = {ratio:.10g} x torch's: the clipping lacks torch's +1e-6 "
                   "(torch scales by max_norm / (norm + 1e-6)); use ll.optim.clip_grad_norm", confirmed=True)]
  return [Trap("lr_scale", "", f"at step {k} every update is {ratio:.6g} x torch's: a learning-rate, schedule or "
               "clipping-factor difference (the direction agrees)", confirmed=True)]


def _verdict(first: Divergence | None, records, tol, teacher_forcing: bool) -> str:
  opt_ok = all(all(e <= tol[q] for e in r.errors[q].values()) for r in records for q in ("update", "param"))
  if first is None:
    return "Model and optimizer agree at every step."
  if first.quantity in ("loss", "grad"):
    s = (f"The model differs first (its {first.quantity} at step {first.step}): forward pass, loss or "
         "backward pass, not the optimizer.")
    if teacher_forcing and opt_ok:
      s += " Fed torch's gradients, the JAX optimizer agrees at every step."
    elif not teacher_forcing:
      s += " Rerun with teacher_forcing=True to check the optimizer on torch's gradients."
    return s
  if first.quantity == "buffer":
    return (f"Loss, gradients, updates and parameters agree up to step {first.step}; the buffer "
            f"{first.parameter} (running statistics) differs there.")
  return (f"Gradients agree up to step {first.step}; the {first.quantity} differs there: the optimizer, its "
          "schedule or the gradient clipping differs, not the model.")


def _model_dtype(torch_model: Any) -> str:
  for p in torch_model.parameters():
    return str(p.dtype).replace("torch.", "")
  raise ValueError("compare_training: the torch model has no parameters")


def default_tx(torch_optimizer: Any, scheduler: Any, *, scheduler_interval: str, steps_per_epoch: int | None,
               clip_grad_norm: float | None, weight_map: WeightMapLike, step_count: int | None = None) -> Any:
  """What ``ll.interop.torch.from_torch_optimizer`` builds from the torch optimizer and scheduler,
  preceded by ``ll.optim.clip_grad_norm`` when clipping."""
  import optax

  import losslab_jax as ll
  from losslab_jax.interop import torch as llt

  params = inspect.signature(llt.from_torch_optimizer).parameters
  kwargs: dict[str, Any] = {}
  if "weight_map" in params:
    kwargs["weight_map"] = weight_map
  if step_count is not None and "step_count" in params:
    kwargs["step_count"] = step_count
  if scheduler is not None and "steps_per_epoch" in params:
    kwargs["steps_per_epoch"] = steps_per_epoch if scheduler_interval == "epoch" else 1  # the cadence torch runs
  elif scheduler_interval == "epoch":
    raise NotImplementedError("compare_training: this ll.interop.torch.from_torch_optimizer has no "
                              "steps_per_epoch; pass tx= for an epoch-stepped scheduler")
  if scheduler_interval == "plateau":
    raise ValueError("compare_training: a ReduceLROnPlateau scheduler has no interop conversion; pass tx= "
                     "(e.g. optax.chain(ll.optim.<opt>(...), ll.optim.reduce_lr_on_plateau(...)))")
  tx = llt.from_torch_optimizer(torch_optimizer, scheduler, **kwargs)
  if clip_grad_norm is not None:
    tx = optax.chain(ll.optim.clip_grad_norm(clip_grad_norm), tx)
  return tx


def _default_opt_state(tx, torch_optimizer, scheduler, params, weight_map, step_count=None):
  """``tx.init(params)`` for a fresh torch optimizer; torch's state converted by interop otherwise."""
  if not torch_optimizer.state:
    return tx.init(params)
  from losslab_jax.interop import torch as llt

  sig = inspect.signature(llt.optimizer_state_from_torch).parameters
  if "weight_map" not in sig:
    raise NotImplementedError("compare_training: the torch optimizer has state (a run in progress) and this "
                              "ll.interop.torch.optimizer_state_from_torch takes no weight_map; pass opt_state=")
  kwargs = {"step_count": step_count} if step_count is not None and "step_count" in sig else {}
  if hasattr(weight_map, "param_names_of"):  # the torch names of the optimizer's parameters, by identity
    kwargs["param_names"] = weight_map.param_names_of(torch_optimizer)
  return llt.optimizer_state_from_torch(tx, torch_optimizer.state_dict(), params, weight_map=weight_map,
                                        scheduler=scheduler, **kwargs)


def compare_training(torch_model: Any, torch_optimizer: Any, torch_loss_fn: Callable[[Any, tuple], Any],
                     nnx_model: Any, jax_loss_fn: Callable[[Any, tuple], Any], batches: Iterable[Any], *,
                     tx: Any = None, opt_state: Any = None, scheduler: Any = None,
                     scheduler_interval: str = "step", steps_per_epoch: int | None = None,
                     clip_grad_norm: float | None = None, teacher_forcing: bool = False,
                     rtol: float | Mapping[str, float] | None = None, weight_map: WeightMapLike | None = None,
                     jax_batch: Callable[[tuple], tuple] | None = None,
                     ignore: Sequence[str] = (), step_count: int | None = None) -> TrainingReport:
  """Train a torch model and its nnx port on the same batches from the same weights; compare every step.

  Step ``k`` on each side: the loss of batch ``k``, its raw gradients (before clipping), the update
  (``new - old`` parameters) and the new parameters. Every one is compared per parameter, by torch
  name in torch's layout (through the weight map), with parity's relative error
  (:mod:`parity._compare`), with the floor ``1e-3 x`` the largest magnitude of that quantity over
  the *whole model* and, for the loss and the gradients, over the steps so far (a loss or a
  gradient that has fallen close to 0 by cancellation is not asked for more digits than the
  cancellation left) (a gradient that is zero in exact arithmetic, like attention's key bias, whose
  per-query constant softmax ignores, carries only rounding noise); updates also against
  ``4 eps |p| / rtol`` (an applied update carries the rounding of its parameter) and new values
  against their largest magnitude so far (as parity's trajectories). The first divergence is the first step, and in it
  the first of loss, gradient, update, new value, parameters in torch's order, beyond tolerance.

  The torch loop is ``zero_grad(); torch_loss_fn(torch_model, batch).backward();
  clip_grad_norm_(...)`` (if ``clip_grad_norm``) ``; optimizer.step()`` and
  ``scheduler.step()`` after every step (``scheduler_interval="step"``), after every
  ``steps_per_epoch``-th step (``"epoch"``), or ``scheduler.step(loss)`` before ``optimizer.step()``
  (``"plateau"``, ReduceLROnPlateau). The JAX loop is ``jax.value_and_grad`` of
  ``jax_loss_fn(model, batch)`` on the nnx model's ``Param`` state (other state, e.g. BatchNorm
  statistics, is threaded through), then ``tx.update(grads, state, params, value=loss)``.
  Both models are trained: torch's in place, the nnx model on a copy of its state (it is left as
  it was).

  Args:
    torch_model: the reference ``torch.nn.Module``; its parameter dtype is the comparison's dtype.
    torch_optimizer: a torch optimizer over ``torch_model``'s parameters (fresh, or mid-run).
    torch_loss_fn: ``(torch_model, batch) -> scalar tensor``; ``batch`` is a tuple of tensors.
    nnx_model: the port, a ``flax.nnx.Module`` (built in the same dtype).
    jax_loss_fn: ``(nnx_model, batch) -> scalar``; ``batch`` is a tuple of jnp arrays, in torch's
      layout unless ``jax_batch`` converts it (move image channels last yourself, or there).
    batches: one tuple of arrays (numpy or tensors) per step; floating arrays are cast to the dtype.
    tx: the JAX transformation; default :func:`default_tx`: what
      ``ll.interop.torch.from_torch_optimizer(torch_optimizer, scheduler, weight_map=...,
      steps_per_epoch=...)`` builds, with ``ll.optim.clip_grad_norm(clip_grad_norm)`` first. A
      ``tx`` you pass must clip by itself.
    opt_state: its initial state; default ``tx.init(params)`` for a fresh torch optimizer, else
      torch's state converted by ``ll.interop.torch.optimizer_state_from_torch`` (a run continued
      mid-way).
    scheduler: torch's LR scheduler (also converted into the default ``tx``).
    scheduler_interval: ``"step"``, ``"epoch"`` (needs ``steps_per_epoch``) or ``"plateau"``.
    steps_per_epoch: optimizer steps per epoch, for ``scheduler_interval="epoch"``.
    clip_grad_norm: torch's ``clip_grad_norm_`` ``max_norm``, or None.
    teacher_forcing: feed torch's gradients of each step to the JAX optimizer, so the updates
      test the optimizer alone (loss and gradients still test the model).
    rtol: a float, or ``{"loss"|"grad"|"update"|"param"|"buffer": rtol}``; default float64 1e-10
      for every quantity; float32 1e-5 for the loss, :data:`FLOAT32_UPDATE_RTOL` (1e-3) for
      updates and :data:`FLOAT32_TRAINING_RTOL` (3e-4) for the rest (both measured, see there) (float32 runs of many steps drift further: see
      ``python -m parity drift`` and :meth:`TrainingReport.plot_drift`).
    weight_map: a weight map from :func:`parity.copy_weights` whose copy is already in the nnx
      model; by default the weights are copied here (``copy_weights(torch_model, nnx_model)``).
    jax_batch: ``tuple of numpy arrays -> tuple`` applied to each batch for the JAX side only.
    step_count: how many ``optimizer.step()`` calls the torch optimizer has made (0 for a fresh
      one, the default then); needed to continue a run mid-way with an optimizer that keeps no
      step count (SGD, Lion) and a scheduler, as ``ll.interop.torch`` requires.
    ignore: torch parameter or buffer names (fnmatch patterns) left out of the verdict (still in the
      table): e.g. a parameter whose gradient is zero in exact arithmetic, whose rounding noise a
      normalising optimizer (Adam) turns into updates of ``~lr * noise / eps`` that differ in any
      two implementations (reported as the ``noise_gradient`` trap).

  Returns:
    A :class:`~parity._port._report.TrainingReport`. A uniform-factor update difference is named:
    ``schedule_shift`` (the JAX schedule is one step early or late), ``clip_eps`` (clipping
    without torch's ``+1e-6``), else ``lr_scale``.

  Raises:
    ValueError: an unknown ``scheduler_interval``, ``"epoch"`` without ``steps_per_epoch``, unknown
      ``rtol`` keys, or models of different dtypes.

  Examples:
    >>> import numpy as np, torch
    >>> from flax import nnx
    >>> import parity, losslab_jax as ll
    >>> t = torch.nn.Linear(3, 2)
    >>> n = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    >>> opt = torch.optim.SGD(t.parameters(), lr=0.1, momentum=0.9)
    >>> batches = [(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32))] * 3
    >>> r = parity.compare_training(
    ...     t, opt, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]),
    ...     n, lambda m, b: ll.losses.mse_loss(m(b[0]), b[1]), batches)
    >>> r.passed, len(r.steps)
    (True, 3)
  """
  if scheduler_interval not in INTERVALS:
    raise ValueError(f"compare_training: expected scheduler_interval in {INTERVALS}, got {scheduler_interval!r}")
  if scheduler_interval == "epoch" and not (isinstance(steps_per_epoch, int) and steps_per_epoch >= 1):
    raise ValueError("compare_training: scheduler_interval='epoch' needs steps_per_epoch >= 1, got "
                     f"{steps_per_epoch!r}")
  from flax import nnx

  batches = list(batches)
  dtype = _model_dtype(torch_model)
  tol = _tolerances(rtol, dtype)
  n_dtypes = {str(v.dtype) for v in __import__("jax").tree_util.tree_leaves(nnx.state(nnx_model, nnx.Param))}
  if n_dtypes != {dtype}:
    raise ValueError(f"compare_training: the torch model is {dtype}, the nnx model's parameters are "
                     f"{sorted(n_dtypes)}: build both in one dtype")
  if weight_map is None:
    weight_map = copy_weights(torch_model, nnx_model)
  if step_count is None and not torch_optimizer.state:
    step_count = 0  # a fresh optimizer
  if tx is None:
    tx = default_tx(torch_optimizer, scheduler, scheduler_interval=scheduler_interval,
                    steps_per_epoch=steps_per_epoch, clip_grad_norm=clip_grad_norm, weight_map=weight_map,
                    step_count=step_count)
  if opt_state is None:
    opt_state = _default_opt_state(tx, torch_optimizer, scheduler, nnx.state(nnx_model, nnx.Param), weight_map,
                                   step_count)
  t_run = torch_steps(torch_model, torch_optimizer, torch_loss_fn, batches, dtype=dtype, scheduler=scheduler,
                      scheduler_interval=scheduler_interval, steps_per_epoch=steps_per_epoch,
                      clip_grad_norm=clip_grad_norm)
  j_run = jax_steps(nnx_model, tx, jax_loss_fn, batches, weight_map=weight_map, dtype=dtype, opt_state=opt_state,
                    teacher_grads=t_run.grads if teacher_forcing else None, jax_batch=jax_batch)
  records = compare_runs(j_run, t_run, tol, dtype)
  names = [n for n in t_run.params[0] if not any(fnmatch.fnmatchcase(n, p) for p in ignore)]
  judged = [_without(r, ignore) for r in records] if ignore else records
  first = _initial_divergence(j_run, t_run, tol["param"]) or first_divergence(judged, tol, names)
  traps = _training_traps(first, records, j_run, t_run, clip_grad_norm, torch_model)
  if first is not None and traps:
    first = dataclasses.replace(first, trap=traps[0].name)
  return TrainingReport(first is None, first, records, traps, teacher_forcing, dtype, tol,
                        _verdict(first, judged, tol, teacher_forcing), tuple(ignore))


def _without(r: StepRecord, ignore: Sequence[str]) -> StepRecord:
  keep = lambda n: not any(fnmatch.fnmatchcase(n, p) for p in ignore)  # noqa: E731
  return dataclasses.replace(r, errors={q: {n: e for n, e in d.items() if keep(n)} for q, d in r.errors.items()})
