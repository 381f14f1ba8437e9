"""Parity cases for Adafactor, Muon, get_total_norm / clip_grads_with_norm, averaged parameters
(AveragedModel), SWALR and the gradient scaler (GradScaler).

Optimizer cases run the shared 50-step problem of :mod:`parity.cases._optim_problem` with
teacher-forced gradients (torch's, fed to both sides).
"""

from __future__ import annotations

import jax
import numpy as np
import torch

import losslab_jax as ll
from parity._case import Config, FunctionCase, TrajectoryCase, register
from parity.cases._optim_problem import optimizer_case
from parity.cases.optim import Scheduled, exp_decay
from parity.reference.muon import MuonFullPrecision

# ---------------------------------------------------------------------------------------------
# Adafactor: w1 (6, 5) and w2 (5, 3) are factored, b1, b2 (vectors) and s (a scalar) are not.

register(optimizer_case(
    "adafactor", ll.optim.adafactor, lambda ps, **kw: Scheduled(torch.optim.Adafactor, ps, **kw),
    [Config("default"),
     Config("lr0.05", {"lr": 0.05}),
     Config("wd-maximize", {"lr": 0.03, "weight_decay": 0.5, "maximize": True}),
     Config("eps-d", {"lr": 0.05, "eps": (1e-3, 1e-2), "d": 2.0}),
     Config("beta2-decay", {"lr": 0.02, "beta2_decay": -0.5, "weight_decay": 0.1}),
     Config("rho-capped", {"lr": 0.5}),      # rho_t = 1/sqrt(t) takes over from lr after step 4
     Config("lr-schedule", {"lr": exp_decay(0.05, 0.95), "weight_decay": 0.2})]))

# ---------------------------------------------------------------------------------------------
# Muon on the 2-D leaves (w1, w2), AdamW on the others: torch's documented recipe, and ours with
# ll.optim.param_groups.


def _muon_groups_jax(*, adamw_lr=1e-3, full=False, **kw):
  import jax.numpy as jnp

  labels = lambda params: jax.tree.map(lambda p: "muon" if p.ndim == 2 else "adamw", params)  # noqa: E731
  muon = ll.optim.muon(**kw, ns_dtype=None if full else jnp.bfloat16)
  return ll.optim.param_groups({"muon": muon, "adamw": ll.optim.adamw(lr=adamw_lr)}, labels)


class _TwoOptimizers:
  def __init__(self, *opts):
    self.opts = opts

  def zero_grad(self):
    for o in self.opts:
      o.zero_grad()

  def step(self):
    for o in self.opts:
      o.step()


def _muon_groups_torch(ps, *, adamw_lr=1e-3, full=False, **kw):
  cls = MuonFullPrecision if full else torch.optim.Muon
  lr = kw.pop("lr", 1e-3)
  two_d = {k: v for k, v in ps.items() if v.ndim == 2}
  rest = [v for v in ps.values() if v.ndim != 2]
  return _TwoOptimizers(Scheduled(cls, two_d, lr=lr, **kw), torch.optim.AdamW(rest, lr=adamw_lr))


MUON_CONFIGS = [
    Config("default"),
    Config("lr0.02", {"lr": 0.02}),
    Config("no-nesterov-wd0", {"lr": 0.02, "nesterov": False, "weight_decay": 0.0}),
    Config("match-rms-adamw", {"lr": 0.01, "adjust_lr_fn": "match_rms_adamw", "momentum": 0.9}),
    Config("spectral-unclamped-ns3", {"lr": 0.01, "adjust_lr_fn": "spectral_unclamped", "ns_steps": 3,
                                      "ns_coefficients": (2.0, -1.5, 0.5)}),
    Config("lr-schedule", {"lr": exp_decay(0.03, 0.95), "weight_decay": 0.2}),
]

register(optimizer_case(
    "muon_full_precision", lambda **kw: _muon_groups_jax(full=True, **kw),
    lambda ps, **kw: _muon_groups_torch(ps, full=True, **kw), MUON_CONFIGS))

# torch's default Muon runs Newton-Schulz in bfloat16 (unit roundoff 2**-9 = 2e-3) with float32
# products rounded once to bfloat16; ll.optim.muon rounds at the same points (lax.reduce_precision),
# so most iterations agree bitwise with torch's. Not all: float32 sums in a different order land on
# the other side of a bfloat16 rounding boundary now and then (measured on this problem: 2 of 100
# Newton-Schulz calls differ, by one bfloat16 ulp in one element), and the iteration amplifies such
# a flip in the directions of small singular values. Measured worst relative error over these
# configs, 50 teacher-forced steps: float32 3.5e-6, float64 4.4e-4 (float64 gradients reach
# bfloat16 through float32, as in torch, but buffer values near a boundary flip more often).
# The full-precision case above shows that the rest of the algorithm is exact.
register(optimizer_case(
    "muon", _muon_groups_jax, _muon_groups_torch, MUON_CONFIGS,
    rtol={"float32": 2e-3, "float64": 2e-3},
    tolerance_reason=(
        "torch runs Newton-Schulz in bfloat16: a float32 sum order that lands on the other side of a"
        " bfloat16 rounding boundary flips one ulp (2e-3), amplified by the iteration; measured worst"
        " 3.5e-6 (float32) and 4.4e-4 (float64) over 50 teacher-forced steps. Exactness of the rest:"
        " case muon_full_precision.")))

# ---------------------------------------------------------------------------------------------
# get_total_norm / clip_grads_with_norm over several leaves of different shapes.


def _leaves(rng, dtype, scale=1.0, special=None):
  from parity.cases import _gen

  gs = [_gen.normal(rng, s, dtype, scale) for s in ((4, 3), (5,), (), (2, 2, 2))]
  if special is not None:
    gs[1][2] = special
  return tuple(gs)


def _total_norm_jax(*leaves, norm_type=2.0):
  return ll.optim.get_total_norm({"g": list(leaves)}, norm_type)


def _total_norm_torch(*leaves, norm_type=2.0):
  return torch.nn.utils.get_total_norm(list(leaves), norm_type)


NORM_CONFIGS = [
    Config("l2"), Config("l1", {"norm_type": 1.0}), Config("inf", {"norm_type": float("inf")}),
    Config("p3", {"norm_type": 3.0}), Config("p0.5", {"norm_type": 0.5}),
    Config("tiny", {}, {"scale": 1e-20}), Config("huge", {}, {"scale": 1e18}),
    Config("nan-l2", {}, {"special": np.nan}), Config("nan-inf-norm", {"norm_type": float("inf")}, {"special": np.nan}),
    Config("inf-element", {}, {"special": np.inf}),
]

register(FunctionCase("get_total_norm", "optim", _total_norm_jax, _total_norm_torch, _leaves, NORM_CONFIGS,
                      grad_argnums=()))


def _clip_with_jax(*leaves, max_norm, norm_type=2.0, total=None):
  import jax.numpy as jnp

  t = ll.optim.get_total_norm(list(leaves), norm_type) if total is None else total
  out = ll.optim.clip_grads_with_norm(list(leaves), max_norm, t)
  return jnp.concatenate([jnp.ravel(x) for x in out])


def _clip_with_torch(*leaves, max_norm, norm_type=2.0, total=None):
  ps = [torch.zeros_like(g, requires_grad=True) for g in leaves]
  for p, g in zip(ps, leaves):
    p.grad = g.clone()
  t = torch.nn.utils.get_total_norm(leaves, norm_type) if total is None else torch.tensor(total, dtype=leaves[0].dtype)
  torch.nn.utils.clip_grads_with_norm_(ps, max_norm, t)
  return torch.cat([p.grad.reshape(-1) for p in ps])


register(FunctionCase(
    "clip_grads_with_norm", "optim", _clip_with_jax, _clip_with_torch, _leaves,
    [Config("l2-clips", {"max_norm": 0.5}), Config("no-clip", {"max_norm": 100.0}),
     Config("inf-norm", {"max_norm": 0.3, "norm_type": float("inf")}),
     Config("given-total", {"max_norm": 1.0, "total": 7.25}),
     Config("nan", {"max_norm": 1.0}, {"special": np.nan}),
     Config("inf-grad", {"max_norm": 1.0}, {"special": np.inf})],
    grad_argnums=()))

# ---------------------------------------------------------------------------------------------
# GradScaler: a float16 forward pass (parameters and data cast to half, master parameters and
# gradients in float32/float64), the loss scaled before backward. torch's scaled gradients are
# recorded and fed to ll.optim.grad_scaler (teacher forcing); both sides' parameters and scale
# are compared after every step. Overflows: torch's own (the default 2**16 overflows float16 in
# the first backward passes) and injected ones (the scaled loss times 1e6 at chosen steps). The lr
# follows a LambdaLR stepped every iteration, skipped or not.

GS_STEPS = 30


def _gs_torch_run(seed, dtype, *, opt, opt_kw, scaler_kw, inject=(), gamma=None):
  import warnings

  from parity.cases._optim_problem import PARAM_NAMES, initial, torch_loss

  p0, x, y = initial(seed, dtype)
  params = {k: torch.tensor(p0[k], requires_grad=True) for k in PARAM_NAMES}
  xh, yh = torch.from_numpy(x).half(), torch.from_numpy(y).half()
  optimizer = getattr(torch.optim, opt)(list(params.values()), **opt_kw)
  sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: gamma ** k) if gamma else None
  scaler = torch.amp.GradScaler("cpu", **scaler_kw)
  traj = [{"params": {k: v.detach().numpy().copy() for k, v in params.items()},
           "scale": np.asarray(scaler_kw.get("init_scale", 2.0**16), np.float32)}]
  grads = []
  for k in range(GS_STEPS):
    optimizer.zero_grad()
    loss = torch_loss({n: v.half() for n, v in params.items()}, xh, yh).to(getattr(torch, dtype))
    if k in inject:
      loss = loss * 1e6
    scaler.scale(loss).backward()
    grads.append({n: v.grad.numpy().copy() for n, v in params.items()})
    scaler.step(optimizer)
    scaler.update()
    if sched is not None:
      with warnings.catch_warnings():   # "lr_scheduler.step() before optimizer.step()" when skipped
        warnings.simplefilter("ignore", UserWarning)
        sched.step()
    traj.append({"params": {n: v.detach().numpy().copy() for n, v in params.items()},
                 "scale": np.asarray(scaler.get_scale(), np.float32)})
  return traj, grads


_GS_CACHE: dict = {}


def _gs_torch(seed, dtype, **kw):
  key = (seed, dtype, repr(sorted(kw.items())))
  if key not in _GS_CACHE:
    _GS_CACHE.clear()
    _GS_CACHE[key] = _gs_torch_run(seed, dtype, **kw)
  return _GS_CACHE[key]


def _gs_jax(seed, dtype, *, opt, opt_kw, scaler_kw, inject=(), gamma=None):
  import jax.numpy as jnp
  import optax

  from parity.cases._optim_problem import initial

  _, grads = _gs_torch(seed, dtype, opt=opt, opt_kw=opt_kw, scaler_kw=scaler_kw, inject=inject, gamma=gamma)
  p0, _, _ = initial(seed, dtype)
  kw = dict(opt_kw)
  if gamma:
    lr0 = kw.pop("lr")
    kw["lr"] = lambda k: lr0 * jnp.power(gamma, jnp.asarray(k, jnp.result_type(float)))
  tx = ll.optim.grad_scaler({"SGD": ll.optim.sgd, "Adam": ll.optim.adam, "AdamW": ll.optim.adamw}[opt](**kw),
                            **scaler_kw)
  params = {k: jnp.asarray(v) for k, v in p0.items()}
  state = tx.init(params)
  step = jax.jit(lambda p, s, g: (lambda u, s2: (optax.apply_updates(p, u), s2))(*tx.update(g, s, p)))
  traj = [{"params": {k: np.asarray(v) for k, v in params.items()}, "scale": np.asarray(ll.optim.loss_scale(state))}]
  for g in grads:
    params, state = step(params, state, {k: jnp.asarray(v) for k, v in g.items()})
    traj.append({"params": {k: np.asarray(v) for k, v in params.items()},
                 "scale": np.asarray(ll.optim.loss_scale(state))})
  return traj


register(TrajectoryCase(
    "grad_scaler", "optim", _gs_jax, lambda seed, dtype, **kw: _gs_torch(seed, dtype, **kw)[0],
    [Config("adam-defaults-injected", {"opt": "Adam", "opt_kw": {"lr": 0.01}, "scaler_kw": {}, "inject": (6, 7, 15)}),
     Config("sgd-grow3-schedule", {"opt": "SGD", "opt_kw": {"lr": 0.05, "momentum": 0.9},
                                   "scaler_kw": {"init_scale": 2.0**10, "growth_interval": 3}, "inject": (4, 11, 20),
                                   "gamma": 0.9}),
     Config("adamw-factors-schedule", {"opt": "AdamW", "opt_kw": {"lr": 0.02, "weight_decay": 0.1},
                                       "scaler_kw": {"init_scale": 2.0**20, "growth_factor": 4.0,
                                                     "backoff_factor": 0.25, "growth_interval": 2},
                                       "inject": (9,), "gamma": 0.95})],
    what=f"params and loss scale after each of {GS_STEPS} steps"))

# ---------------------------------------------------------------------------------------------
# SWALR: get_last_lr() after k scheduler steps (the shared schedule-case driver).


def _swalr_torch(opt, *, lr, swa_lr, **kw):
  del lr  # the optimizer's lr (set by the driver)
  return torch.optim.swa_utils.SWALR(opt, swa_lr=swa_lr, **kw)


def _register_swalr():
  from parity.cases.schedules import schedule_case

  schedule_case("swa_lr", ll.schedules.swa_lr, _swalr_torch, [
      Config("cos-default", {"lr": 0.1, "swa_lr": 0.05}, {"K": 20}),
      Config("linear-5", {"lr": 0.3, "swa_lr": 0.01, "anneal_epochs": 5, "anneal_strategy": "linear"}, {"K": 12}),
      Config("cos-1", {"lr": 0.05, "swa_lr": 0.2, "anneal_epochs": 1}, {"K": 6}),
      Config("anneal-0", {"lr": 0.1, "swa_lr": 0.02, "anneal_epochs": 0}, {"K": 5}),
      Config("cos-37", {"lr": 0.02, "swa_lr": 0.001, "anneal_epochs": 37}, {"K": 60}),
  ], cast=("lr", "swa_lr"))


_register_swalr()

# ---------------------------------------------------------------------------------------------
# AveragedModel: the averaged parameters after each update_parameters, along torch's SGD
# trajectory on the shared problem (both sides average the same parameter values: torch's).

AVG_STEPS = 25


def _avg_torch_run(seed, dtype, *, avg, decay=None):
  from parity.cases._optim_problem import PARAM_NAMES, initial, torch_loss

  p0, x, y = initial(seed, dtype)
  module = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.tensor(p0[k])) for k in PARAM_NAMES})
  multi = {"default": None, "swa": torch.optim.swa_utils.get_swa_multi_avg_fn(),
           "ema": torch.optim.swa_utils.get_ema_multi_avg_fn(decay) if decay is not None else None}[avg]
  averaged = torch.optim.swa_utils.AveragedModel(module, multi_avg_fn=multi)
  opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
  x, y = torch.from_numpy(x), torch.from_numpy(y)
  seen, out = [], []
  for _ in range(AVG_STEPS):
    opt.zero_grad()
    torch_loss(dict(module.items()), x, y).backward()
    opt.step()
    seen.append({k: v.detach().numpy().copy() for k, v in module.items()})
    averaged.update_parameters(module)
    out.append({k: v.detach().numpy().copy() for k, v in averaged.module.items()})
  return out, seen


def _avg_torch(seed, dtype, **kw):
  key = ("avg", seed, dtype, repr(sorted(kw.items())))
  if key not in _GS_CACHE:
    _GS_CACHE.clear()
    _GS_CACHE[key] = _avg_torch_run(seed, dtype, **kw)
  return _GS_CACHE[key]


def _avg_jax(seed, dtype, *, avg, decay=None):
  import jax.numpy as jnp

  _, seen = _avg_torch(seed, dtype, avg=avg, decay=decay)
  fn = {"default": None, "swa": ll.optim.swa_multi_avg_fn(),
        "ema": ll.optim.ema_multi_avg_fn(decay) if decay is not None else None}[avg]
  tx = ll.optim.averaged_params(fn)
  state = tx.init({k: jnp.zeros_like(jnp.asarray(v)) for k, v in seen[0].items()})
  update = jax.jit(tx.update)
  out = []
  for p in seen:
    state = update(state, {k: jnp.asarray(v) for k, v in p.items()})
    out.append({k: np.asarray(v) for k, v in state.averaged.items()})
  return out


register(TrajectoryCase(
    "averaged_params", "optim", _avg_jax, lambda seed, dtype, **kw: _avg_torch(seed, dtype, **kw)[0],
    [Config("swa-default", {"avg": "default"}), Config("swa-multi", {"avg": "swa"}),
     Config("ema-0.9", {"avg": "ema", "decay": 0.9}), Config("ema-0.999", {"avg": "ema", "decay": 0.999}),
     Config("ema-0.3", {"avg": "ema", "decay": 0.3})],
    what=f"AveragedModel parameters after each of {AVG_STEPS} update_parameters"))
