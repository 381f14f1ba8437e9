"""Parity cases for Rprop, ASGD (params and its average ``ax``), LBFGS, gradient clipping and
parameter groups (with frozen parameters)."""

from __future__ import annotations

import dataclasses

import numpy as np
import optax
import torch

import losslab_jax as ll
from parity._case import Config, FunctionCase, TrajectoryCase, register
from parity.cases import _gen
from parity.cases._optim_problem import PARAM_NAMES, initial, optimizer_case, torch_loss

# ---------------------------------------------------------------------------------------------
# Rprop

register(optimizer_case(
    "rprop", ll.optim.rprop, lambda ps, **kw: torch.optim.Rprop(ps.values(), **kw),
    [Config("default", {}),
     Config("lr0.05", {"lr": 0.05}),
     Config("etas-steps", {"lr": 0.02, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.04)}),
     Config("lr-above-max", {"lr": 0.5, "step_sizes": (1e-6, 0.1)}),
     Config("maximize", {"lr": 0.01, "maximize": True})]))

# ---------------------------------------------------------------------------------------------
# ASGD: the parameters, and separately the average `ax` kept in the state.

ASGD_CONFIGS = [
    Config("default", {}),
    Config("t0-3", {"lr": 0.05, "t0": 3.0}),
    Config("lambd-alpha", {"lr": 0.1, "lambd": 0.05, "alpha": 0.5, "t0": 10.0}),
    Config("wd", {"lr": 0.05, "weight_decay": 0.1, "t0": 5.0}),
    Config("maximize", {"lr": 0.01, "t0": 2.0, "maximize": True}),
]

register(optimizer_case("asgd", ll.optim.asgd, lambda ps, **kw: torch.optim.ASGD(ps.values(), **kw),
                        ASGD_CONFIGS))

ASGD_AX_STEPS = 30


def _asgd_ax_torch(seed, dtype, **kw):
  """torch ASGD's ``ax`` after every step, and the raw gradients that produced them."""
  p0, x, y = initial(seed, dtype)
  params = {k: torch.tensor(p0[k], requires_grad=True) for k in PARAM_NAMES}
  x, y = torch.from_numpy(x), torch.from_numpy(y)
  opt = torch.optim.ASGD(params.values(), **kw)
  axs, grads = [], []
  for _ in range(ASGD_AX_STEPS):
    opt.zero_grad()
    torch_loss(params, x, y).backward()
    grads.append({k: v.grad.numpy().copy() for k, v in params.items()})
    opt.step()
    axs.append({k: opt.state[v]["ax"].numpy().copy() for k, v in params.items()})
  return axs, grads


def _asgd_ax_jax(seed, dtype, **kw):
  import jax.numpy as jnp

  _, grads = _asgd_ax_torch(seed, dtype, **kw)
  p0, _, _ = initial(seed, dtype)
  params = {k: jnp.asarray(v) for k, v in p0.items()}
  tx = ll.optim.asgd(**kw)
  state = tx.init(params)
  axs = []
  for g in grads:
    updates, state = tx.update({k: jnp.asarray(v) for k, v in g.items()}, state, params)
    params = optax.apply_updates(params, updates)
    axs.append({k: np.asarray(v) for k, v in optax.tree_utils.tree_get(state, "ax").items()})
  return axs


register(TrajectoryCase("asgd_ax", "optim", _asgd_ax_jax,
                        lambda seed, dtype, **kw: _asgd_ax_torch(seed, dtype, **kw)[0],
                        ASGD_CONFIGS, what=f"state['ax'] after each of {ASGD_AX_STEPS} steps"))

# ---------------------------------------------------------------------------------------------
# LBFGS: end to end (closure-driven; each side computes its own gradients).


def _torch_lbfgs(ps, **kw):
  return torch.optim.LBFGS(list(ps.values()), **kw)


def _closure_case(case: TrajectoryCase) -> TrajectoryCase:
  """Run the JAX side with rank promotion allowed: the shared problem's loss adds its biases by
  broadcasting (``x @ w1 + b1``), and closure-driven cases evaluate that loss in JAX, which the
  test suite's ``jax_numpy_rank_promotion="raise"`` would reject."""
  import jax

  def run_jax(seed, dtype, **kw):
    with jax.numpy_rank_promotion("allow"):
      return case.run_jax(seed, dtype, **kw)

  return dataclasses.replace(case, run_jax=run_jax)


# float32 end to end cannot reach 1e-5 here: each inner iteration re-evaluates the loss at points
# chosen from the previous ones, so ulp-level differences in the gradient (XLA vs torch kernels)
# are amplified by the non-convex dynamics. Measured on these configs and seeds (2 steps):
#   config          losslab32-torch32  torch32-torch64  losslab32-torch64
#   iter5-h3        2.3e-5             3.5e-5           5.8e-5
#   tol-change      1.2e-4             1.3e-5           1.1e-4
#   wolfe-iter7-h3  1.7e-4             7.9e-5           9.2e-5
# so losslab_jax float32 is about as far from the float64 result as torch float32 is (scanning
# max_iter = 1..10 for tol-change, either one is the closer, by turns). float64 agrees to <= 5e-12.
register(_closure_case(optimizer_case(
    "lbfgs", ll.optim.lbfgs, _torch_lbfgs,
    [Config("iter1", {"max_iter": 1}),
     Config("iter5-h3", {"max_iter": 5, "history_size": 3}),
     Config("lr0.5-iter4-h2", {"lr": 0.5, "max_iter": 4, "history_size": 2}),
     Config("tol-change", {"max_iter": 10, "tolerance_change": 1e-3}),
     Config("wolfe-iter1", {"max_iter": 1, "line_search_fn": "strong_wolfe"}),
     Config("wolfe-iter7-h3", {"max_iter": 7, "history_size": 3, "line_search_fn": "strong_wolfe"}),
     Config("wolfe-maxeval4", {"max_iter": 10, "max_eval": 4, "history_size": 5,
                               "line_search_fn": "strong_wolfe"})],
    steps=2, closure=True, rtol={"float32": 1e-3},
    tolerance_reason=(
        "float32 end to end: closure re-evaluations amplify ulp-level gradient differences through the"
        " non-convex dynamics. Measured (2 steps): losslab32 vs torch32 up to 1.7e-4, torch32 vs torch64"
        " up to 7.9e-5, losslab32 vs torch64 up to 1.1e-4 (table in the module); float64 agrees to 5e-12."))))

# torch's default settings (20 iterations per step, history 100), one step, float64 only: in
# float32 these runs are ill-conditioned at the scale of the check. Measured (float32 seed):
# torch float32 vs torch float64 = 2.7e-3 (fixed step) and 7.6e-2 (strong Wolfe), and losslab_jax
# float32 vs torch float32 = 5.5e-3 and 8.3e-2; scanning max_iter = 1..20 on one seed, the
# losslab_jax-vs-torch float32 error tracks torch's own float32-vs-float64 error within 1.3x at
# every iteration count. float64 measures 6.9e-13 and 9.0e-11; the strong-Wolfe run is close to the
# 1e-10 bound because the same conditioning applies at 1e-16 (its float64 error swings between
# 1e-15 and 1.2e-9 as max_iter goes 1..20), so a different BLAS or CPU may push it over.
register(_closure_case(optimizer_case(
    "lbfgs_default", ll.optim.lbfgs, _torch_lbfgs,
    [Config("fixed-step", {}),
     Config("strong-wolfe", {"line_search_fn": "strong_wolfe"})],
    steps=1, closure=True, dtypes=("float64",))))

# ---------------------------------------------------------------------------------------------
# Gradient clipping: the function itself, and clipping before an optimizer step.


def _grads3(rng, dtype, scale=1.0, special=None):
  gs = [_gen.normal(rng, s, dtype, scale) for s in ((4, 3), (5,), ())]
  if special is not None:
    gs[1][2] = special
  return tuple(gs)


def _clip_norm_jax(*grads, max_norm, norm_type=2.0):
  import jax.numpy as jnp

  tx = ll.optim.clip_grad_norm(max_norm, norm_type)
  g = list(grads)
  out, state = tx.update(g, tx.init(g))
  return jnp.concatenate([jnp.ravel(u) for u in out] + [state.total_norm[None]])


def _clip_norm_torch(*grads, max_norm, norm_type=2.0):
  ps = [torch.zeros_like(g) for g in grads]
  for p, g in zip(ps, grads):
    p.grad = g.clone()
  total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
  return torch.cat([p.grad.reshape(-1) for p in ps] + [total.reshape(1)])


register(FunctionCase(
    "clip_grad_norm", "optim", _clip_norm_jax, _clip_norm_torch,
    lambda rng, dtype, scale=1.0, special=None: _grads3(rng, dtype, scale, special),
    [Config("l2-clips", {"max_norm": 0.5}),
     Config("l2-no-clip", {"max_norm": 100.0}),
     Config("l1", {"max_norm": 1.0, "norm_type": 1.0}),
     Config("inf", {"max_norm": 0.3, "norm_type": float("inf")}),
     Config("p3", {"max_norm": 0.7, "norm_type": 3.0}),
     Config("tiny-grads", {"max_norm": 1.0}, {"scale": 1e-7}),
     Config("nan", {"max_norm": 1.0}, {"special": np.nan}),
     Config("inf-grad", {"max_norm": 1.0}, {"special": np.inf})],
    grad_argnums=()))


def _clip_value_jax(*grads, clip_value):
  import jax.numpy as jnp

  tx = ll.optim.clip_grad_value(clip_value)
  out, _ = tx.update(list(grads), tx.init(list(grads)))
  return jnp.concatenate([jnp.ravel(u) for u in out])


def _clip_value_torch(*grads, clip_value):
  ps = [torch.zeros_like(g) for g in grads]
  for p, g in zip(ps, grads):
    p.grad = g.clone()
  torch.nn.utils.clip_grad_value_(ps, clip_value)
  return torch.cat([p.grad.reshape(-1) for p in ps])


register(FunctionCase(
    "clip_grad_value", "optim", _clip_value_jax, _clip_value_torch,
    lambda rng, dtype, special=None: _grads3(rng, dtype, 1.0, special),
    [Config("c0.5", {"clip_value": 0.5}), Config("c10", {"clip_value": 10.0}),
     Config("nan", {"clip_value": 0.5}, {"special": np.nan})],
    grad_argnums=()))


class _ClipThenStep:
  """A torch optimizer whose ``step()`` first runs ``clip_grad_norm_`` over all parameters."""

  def __init__(self, opt, params, max_norm, norm_type):
    self.opt, self.params, self.max_norm, self.norm_type = opt, list(params), max_norm, norm_type

  def zero_grad(self):
    self.opt.zero_grad()

  def step(self):
    torch.nn.utils.clip_grad_norm_(self.params, self.max_norm, self.norm_type)
    self.opt.step()


def _optimizers():
  """(name, losslab factory, torch class, kwargs) for the optimizers clipping/groups are tested with."""
  out = [("asgd", ll.optim.asgd, torch.optim.ASGD, {"lr": 0.05, "t0": 5.0})]
  if hasattr(ll.optim, "sgd"):
    out.append(("sgd", ll.optim.sgd, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}))
  if hasattr(ll.optim, "adam"):
    out.append(("adam", ll.optim.adam, torch.optim.Adam, {"lr": 0.01}))
  return out


OPTIMIZERS = {name: (jf, tc) for name, jf, tc, _ in _optimizers()}


def _clip_jax(*, opt, max_norm, norm_type, **kw):
  return optax.chain(ll.optim.clip_grad_norm(max_norm, norm_type), OPTIMIZERS[opt][0](**kw))


def _clip_torch(ps, *, opt, max_norm, norm_type, **kw):
  return _ClipThenStep(OPTIMIZERS[opt][1](ps.values(), **kw), ps.values(), max_norm, norm_type)


# Along the trajectory the gradient norms span 0.03-0.48 (L2), 0.09-2.0 (L1), 0.017-0.36 (inf):
# these max_norms clip the early steps and leave later ones alone.
register(optimizer_case(
    "clip_grad_norm_then_step", _clip_jax, _clip_torch,
    [Config(f"{name}-{nt_id}", {"opt": name, "max_norm": mn, "norm_type": nt, **kw})
     for name, _, _, kw in _optimizers()
     for nt_id, nt, mn in (("l2", 2.0, 0.1), ("l1", 1.0, 0.4), ("inf", float("inf"), 0.05))]))

# ---------------------------------------------------------------------------------------------
# Parameter groups: different hyperparameters per group, and frozen parameters (torch: grad None).

GROUP_OF = {"w1": "body", "b1": "body", "w2": "head", "b2": "head", "s": "frozen"}


def _groups_jax(*, opt, lrs, frozen=True, **kw):
  fn = OPTIMIZERS[opt][0]
  transforms = {"body": fn(lr=lrs[0], **kw), "head": fn(lr=lrs[1], **kw)}
  if frozen:
    transforms["frozen"] = optax.set_to_zero()
    labels = dict(GROUP_OF)
  else:
    labels = {k: ("head" if v == "frozen" else v) for k, v in GROUP_OF.items()}
  return ll.optim.param_groups(transforms, labels)


class _FreezeThenStep:
  """A torch optimizer that drops the frozen parameters' gradients (``.grad = None``) before ``step()``."""

  def __init__(self, opt, frozen):
    self.opt, self.frozen = opt, frozen

  def zero_grad(self):
    self.opt.zero_grad()

  def step(self):
    for p in self.frozen:
      p.grad = None
    self.opt.step()


def _groups_torch(ps, *, opt, lrs, frozen=True, **kw):
  # The frozen leaf sits in the head group, as a requires_grad=False parameter would; its .grad is
  # None at every step when frozen.
  body = [ps[k] for k in PARAM_NAMES if GROUP_OF[k] == "body"]
  head = [ps[k] for k in PARAM_NAMES if GROUP_OF[k] in ("head", "frozen")]
  torch_opt = OPTIMIZERS[opt][1]([{"params": body, "lr": lrs[0]}, {"params": head, "lr": lrs[1]}], **kw)
  return _FreezeThenStep(torch_opt, [ps[k] for k in PARAM_NAMES if GROUP_OF[k] == "frozen"] if frozen else [])


def _group_configs():
  cfgs = [Config("rprop-frozen", {"opt": "rprop", "lrs": (0.01, 0.05)})]
  for name, _, _, kw in _optimizers():
    kw = {k: v for k, v in kw.items() if k != "lr"}
    cfgs.append(Config(f"{name}-frozen", {"opt": name, "lrs": (0.01, 0.05), **kw}))
    cfgs.append(Config(f"{name}-two-groups", {"opt": name, "lrs": (0.05, 0.002), "frozen": False, **kw}))
  if "adam" in OPTIMIZERS and hasattr(ll.optim, "adamw"):
    cfgs.append(Config("adamw-wd-frozen", {"opt": "adamw", "lrs": (0.01, 0.03), "weight_decay": 0.5}))
  return cfgs


OPTIMIZERS["rprop"] = (ll.optim.rprop, torch.optim.Rprop)
if hasattr(ll.optim, "adamw"):
  OPTIMIZERS["adamw"] = (ll.optim.adamw, torch.optim.AdamW)

register(optimizer_case("param_groups", _groups_jax, _groups_torch, _group_configs()))
