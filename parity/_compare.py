"""Run cases and measure errors: values, input gradients (VJPs) and step-by-step trajectories.

Error measure. For a result ``a`` and the torch reference ``b`` (arrays of equal shape),

    abs_err = max_i |a_i - b_i|
    rel_err = max_i |a_i - b_i| / max(|b_i|, floor),   floor = max(1e-3 * max_j |b_j|, tiny)

so each element is judged relative to itself, except entries smaller than a thousandth of the
largest reference entry, which are judged relative to that floor (a gradient entry of 1e-9 next
to entries of 1 cannot carry 1e-10 relative accuracy in any implementation). NaN matches NaN
and inf matches inf of the same sign; any other non-finite disagreement is an infinite error.
A dtype or shape mismatch fails the config outright: of the forward value, of every input
gradient, and of every trajectory leaf at every step (a float32 trajectory that torch keeps in
float32 must not come back in float64, even if its values agree). One exception: where torch's
leaf is float64 in a float32 run (torch holds the learning rate and other Python-float values
in double), the losslab_jax leaf may be float32 (the run's dtype) or float64 (a value kept in
double as torch keeps it, e.g. ReduceLROnPlateau's lr); a float16 or integer leaf still fails.

Trajectories (a parameter after each of K steps) add one rule. A parameter is a running sum
``p_k = p_0 + u_1 + ... + u_k``, so its rounding error is set by the magnitudes it has carried, not
by its current value: a scalar that goes 1.0 -> 0.02 -> 0.2 carries ~1e-7 absolute error in
float32 from its time near 1.0 even in two implementations with identical arithmetic (measured:
optax.sgd(momentum=0.9) vs torch SGD, 2 ulps at 1.0 = 1.0e-5 relative at 0.02). So at step k an
element is judged relative to ``max(|b_k|, 0.1 * max_{j<=k} |b_j|)`` (its largest magnitude so far,
causally), besides the leaf-wide 1e-3 floor above.
"""

from __future__ import annotations

import dataclasses
import traceback
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from parity._case import Case, Config, FunctionCase, TrajectoryCase
from parity._convert import to_numpy, to_torch

FLOOR_FRACTION = 1e-3


@dataclasses.dataclass
class Error:
  abs: float = 0.0
  rel: float = 0.0

  def merge(self, other: "Error") -> "Error":
    return Error(max(self.abs, other.abs), max(self.rel, other.rel))


@dataclasses.dataclass
class ConfigResult:
  case: str
  config: str
  dtype: str
  value: Error
  grad: Error | None
  passed: bool
  tolerance: float
  message: str = ""
  per_step_rel: list[float] | None = None

  @property
  def worst_rel(self) -> float:
    return max(self.value.rel, self.grad.rel if self.grad else 0.0)

  @property
  def worst_abs(self) -> float:
    return max(self.value.abs, self.grad.abs if self.grad else 0.0)


def seed_for(case: str, config: str, dtype: str) -> int:
  return zlib.crc32(f"{case}/{config}/{dtype}".encode())


def array_error(a: Any, b: Any, floor_extra: Any = None) -> Error:
  """Error of ``a`` against reference ``b`` (see the module docstring).

  ``floor_extra``: an optional elementwise floor (broadcastable to ``b``) for the denominator.
  """
  a = np.asarray(a, dtype=np.float64)
  b = np.asarray(b, dtype=np.float64)
  if a.shape != b.shape:
    raise ValueError(f"shape mismatch: losslab_jax {a.shape} vs torch {b.shape}")
  if a.size == 0:
    return Error()
  both_nan = np.isnan(a) & np.isnan(b)
  same_inf = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
  agree_nonfinite = both_nan | same_inf
  finite = np.isfinite(a) & np.isfinite(b)
  extra = None if floor_extra is None else np.broadcast_to(np.asarray(floor_extra, np.float64), b.shape)[finite]
  if np.any(~finite & ~agree_nonfinite):
    return Error(float("inf"), float("inf"))
  if not finite.any():
    return Error()
  af, bf = a[finite], b[finite]
  diff = np.abs(af - bf)
  scale = np.max(np.abs(bf))
  floor = max(FLOOR_FRACTION * scale, np.finfo(np.float64).tiny)
  denom = np.maximum(np.abs(bf), floor)
  if extra is not None:
    denom = np.maximum(denom, extra)
  rel = diff / denom
  return Error(float(diff.max()), float(rel.max()))


HISTORY_FRACTION = 0.1


def trajectory_errors(traj_a: Sequence[Any], traj_b: Sequence[Any]) -> list[Error]:
  """Per-step errors of trajectory ``traj_a`` against the reference ``traj_b`` (module docstring)."""
  import jax

  def leaves(tree):
    return jax.tree_util.tree_flatten(jax.tree_util.tree_map(to_numpy, tree, is_leaf=lambda x: hasattr(x, "detach")))

  flat_a = [leaves(t) for t in traj_a]
  flat_b = [leaves(t) for t in traj_b]
  for k, ((_, ta), (_, tb)) in enumerate(zip(flat_a, flat_b)):
    if ta != tb:
      raise ValueError(f"structure mismatch at step {k}: losslab_jax {ta} vs torch {tb}")
  errors = [Error() for _ in flat_a]
  for leaf in range(len(flat_b[0][0]) if flat_b else 0):
    a = np.stack([np.asarray(f[0][leaf], np.float64) for f in flat_a])
    b = np.stack([np.asarray(f[0][leaf], np.float64) for f in flat_b])
    if a.shape != b.shape:
      raise ValueError(f"shape mismatch: losslab_jax {a.shape} vs torch {b.shape}")
    hist = np.maximum.accumulate(np.where(np.isfinite(b), np.abs(b), 0.0), axis=0)
    for k in range(len(errors)):
      e = array_error(a[k], b[k], floor_extra=HISTORY_FRACTION * hist[k])
      errors[k] = errors[k].merge(e)
  return errors


def trajectory_dtype_mismatch(traj_a: Sequence[Any], traj_b: Sequence[Any], run_dtype: str | None = None) -> str | None:
  """The first step and leaf whose dtype is wrong, in words; None if none (module docstring)."""
  import jax

  def leaves(tree):
    return jax.tree_util.tree_leaves(jax.tree_util.tree_map(to_numpy, tree, is_leaf=lambda x: hasattr(x, "detach")))

  for k, (ta, tb) in enumerate(zip(traj_a, traj_b)):
    for i, (x, y) in enumerate(zip(leaves(ta), leaves(tb))):
      dx, dy = np.asarray(x).dtype, np.asarray(y).dtype
      python_float = run_dtype == "float32" and dy == np.float64
      allowed = (np.dtype(np.float32), dy) if python_float else (dy,)
      if dx not in allowed:
        want = " or ".join(str(d) for d in allowed)
        why = f", torch {dy}: a Python float in a {run_dtype} run" if python_float else ""
        return f"dtype mismatch at step {k}, leaf {i}: losslab_jax {dx}, expected {want}{why}"
  return None


def tree_error(a: Any, b: Any) -> Error:
  import jax

  la, ta = jax.tree_util.tree_flatten(jax.tree_util.tree_map(to_numpy, a))
  lb, tb = jax.tree_util.tree_flatten(
      jax.tree_util.tree_map(to_numpy, b, is_leaf=lambda x: hasattr(x, "detach")))
  if ta != tb:
    raise ValueError(f"structure mismatch: losslab_jax {ta} vs torch {tb}")
  err = Error()
  for x, y in zip(la, lb):
    err = err.merge(array_error(x, y))
  return err


def _np_dtype(dtype: str):
  return np.dtype(dtype)


def run_function(case: FunctionCase, config: Config, dtype: str) -> ConfigResult:
  import jax
  import jax.numpy as jnp
  import torch

  rng = np.random.default_rng(seed_for(case.name, config.id, dtype))
  inputs = case.make_inputs(rng, _np_dtype(dtype), **config.params)
  kwargs = dict(config.kwargs)
  tol = case.tolerance(dtype)

  # --- losslab_jax: value and VJP --------------------------------------------------------
  jx = [jnp.asarray(x) for x in inputs]
  argnums = tuple(case.grad_argnums)
  # Under jit, as a training step runs it: one compilation per config instead of one per primitive
  # (eager dispatch compiles each primitive on first use: most of the run's time). Every array is an
  # argument: closed-over arrays would be constants that XLA folds at compile time with its own
  # arithmetic. tests/test_properties.py checks each loss's jitted value and gradient against eager.
  jitted = jax.jit(lambda *args: case.jax_fn(*args, **kwargs))

  def f(*diff_args):
    args = list(jx)
    for i, a in zip(argnums, diff_args):
      args[i] = a
    return jitted(*args)

  if argnums:
    out_j, vjp = jax.vjp(f, *[jx[i] for i in argnums])
  else:
    out_j, vjp = f(), None
  out_np = np.asarray(out_j)
  cot = rng.standard_normal(out_np.shape).astype(out_np.dtype if out_np.dtype.kind == "f" else dtype)
  grads_j = vjp(jnp.asarray(cot)) if vjp is not None else ()

  # --- torch: value and backward -----------------------------------------------------------
  tx = [to_torch(x, requires_grad=(i in argnums)) for i, x in enumerate(inputs)]
  out_t = case.torch_fn(*tx, **kwargs)
  grads_t = ()
  if argnums:
    if out_t.requires_grad:
      out_t.backward(to_torch(cot))
    grads_t = [t.grad if t.grad is not None else torch.zeros_like(t) for t in (tx[i] for i in argnums)]

  msg = ""
  out_t_np = to_numpy(out_t)
  if out_np.dtype != out_t_np.dtype:
    return ConfigResult(case.name, config.id, dtype, Error(np.inf, np.inf), None, False, tol,
                        f"dtype mismatch: losslab_jax {out_np.dtype} vs torch {out_t_np.dtype}")
  value = array_error(out_np, out_t_np, floor_extra=case.value_floor or None)
  grad = None
  if argnums:
    grad = Error()
    for i, gj, gt in zip(argnums, grads_j, grads_t):
      gj_np, gt_np = np.asarray(gj), to_numpy(gt)
      if gj_np.dtype != gt_np.dtype:
        return ConfigResult(case.name, config.id, dtype, value, Error(np.inf, np.inf), False, tol,
                            f"gradient dtype mismatch for input {i}: losslab_jax {gj_np.dtype} vs torch"
                            f" {gt_np.dtype}")
      grad = grad.merge(array_error(gj_np, gt_np))
  res = ConfigResult(case.name, config.id, dtype, value, grad, True, tol, msg)
  res.passed = res.worst_rel <= tol
  return res


def run_trajectory(case: TrajectoryCase, config: Config, dtype: str) -> ConfigResult:
  seed = seed_for(case.name, config.id, dtype)
  kw = {**config.kwargs, **config.params}
  tol = case.tolerance(dtype)
  traj_j = case.run_jax(seed, dtype, **kw)
  traj_t = case.run_torch(seed, dtype, **kw)
  if len(traj_j) != len(traj_t):
    return ConfigResult(case.name, config.id, dtype, Error(np.inf, np.inf), None, False, tol,
                        f"length mismatch: losslab_jax {len(traj_j)} vs torch {len(traj_t)} steps")
  mismatch = trajectory_dtype_mismatch(traj_j, traj_t, dtype)
  if mismatch:
    return ConfigResult(case.name, config.id, dtype, Error(np.inf, np.inf), None, False, tol, mismatch)
  err = Error()
  per_step = []
  for e in trajectory_errors(traj_j, traj_t):
    per_step.append(e.rel)
    err = err.merge(e)
  res = ConfigResult(case.name, config.id, dtype, err, None, err.rel <= tol, tol, per_step_rel=per_step)
  if not res.passed:
    worst = int(np.argmax(per_step))
    res.message = f"worst at step {worst} of {len(per_step)}"
  return res


def run_config(case: Case, config: Config, dtype: str) -> ConfigResult:
  """Run one config in one dtype; exceptions become failed results with the traceback's tail."""
  try:
    if isinstance(case, TrajectoryCase):
      return run_trajectory(case, config, dtype)
    return run_function(case, config, dtype)
  except Exception as exc:  # noqa: BLE001 - the report must show every failure, not stop at one
    tb = traceback.format_exc(limit=-3)
    return ConfigResult(case.name, config.id, dtype, Error(np.inf, np.inf), None, False,
                        case.tolerance(dtype), f"{type(exc).__name__}: {exc}\n{tb}")


def case_dtypes(case: Case, dtypes: Sequence[str]) -> list[str]:
  allowed = getattr(case, "dtypes", None) or dtypes
  return [d for d in dtypes if d in allowed]


def run_case(case: Case, dtypes: Sequence[str]) -> list[ConfigResult]:
  return [run_config(case, cfg, d) for d in case_dtypes(case, dtypes) for cfg in case.configs]
