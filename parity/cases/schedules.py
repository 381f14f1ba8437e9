"""Parity cases for ``ll.schedules`` and ``ll.optim.reduce_lr_on_plateau``.

Schedules. For each count k = 0..K the trajectory holds the losslab_jax value three ways: an eager
call with a Python int, a call of ``jax.jit(schedule)`` with an int32 count (one compilation for all
k), and element k of one call on ``arange(K + 1)``. The torch side builds a one-parameter optimizer
(SGD, or Adam where betas[0] is recorded), the scheduler, and records ``get_last_lr()[0]`` (or the
group's ``momentum`` / ``betas[0]``) after k calls of ``optimizer.step(); scheduler.step()``.

Each config's learning rate (and a few other values) are drawn from the config's seed; in float32
the losslab_jax side receives them as ``np.float32`` scalars, so the schedule computes and returns
float32, compared with torch's Python doubles.

Plateau. A metric sequence (seeded: improving, flat, noisy, with NaN, negative; both modes) is fed
as ``update(..., value=m_k)``; the trajectory holds the state's lr and the factor applied to a unit
update, against torch's ``get_last_lr()[0]`` after ``scheduler.step(m_k)`` and that lr / base lr.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch.optim import lr_scheduler as S

import losslab_jax as ll
from losslab_jax.schedules._core import TABLE_SIZE
from parity._case import Config, TrajectoryCase, register

F = ll.schedules


def _f32(dtype: str) -> Callable[[float], Any]:
  return (lambda x: np.float32(x)) if dtype == "float32" else (lambda x: x)


def _eager(k: int) -> bool:
  """Counts also checked by a scalar eager call: all up to 300, then every 50th and those around the
  end of the recursion tables (eager dispatch costs ~2 ms a call; the jit and vector paths cover every
  count). Elsewhere ``"eager"`` holds NaN on both sides, which the comparator counts as equal."""
  return k <= 300 or k % 50 == 0 or abs(k - TABLE_SIZE) <= 3


def _jax_values(schedule: Callable, K: int) -> list[dict]:
  jitted = jax.jit(schedule)
  vector = np.asarray(schedule(jnp.arange(K + 1)))
  out = []
  for k in range(K + 1):
    eager = np.asarray(schedule(k)) if _eager(k) else np.asarray(np.nan, vector.dtype)
    out.append({"eager": eager, "jit": np.asarray(jitted(jnp.asarray(k, jnp.int32))), "vector": vector[k]})
  return out


def _torch_optimizer(kind: str, lr: float):
  p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
  if kind == "adam":
    return torch.optim.Adam([p], lr=lr)
  return torch.optim.SGD([p], lr=lr, momentum=0.0)


def _read(opt, sched, record: str) -> float:
  if record == "lr":
    return float(sched.get_last_lr()[0])
  group = opt.param_groups[0]
  return float(group["betas"][0] if "betas" in group else group["momentum"])


def _torch_values(make: Callable, K: int, *, optimizer: str = "sgd", lr: float = 0.1, record: str = "lr",
                  steps_per_epoch: int = 1) -> list[dict]:
  """``record`` during optimizer step t = 0..K; the scheduler steps after every ``steps_per_epoch``."""
  opt = _torch_optimizer(optimizer, lr)
  sched = make(opt)
  out = []
  for t in range(K + 1):
    v = _read(opt, sched, record)
    out.append({"eager": v if _eager(t) else math.nan, "jit": v, "vector": v})
    if t == K:
      break
    opt.step()
    if (t + 1) % steps_per_epoch == 0:
      sched.step()
  return out


def schedule_case(name: str, jax_make: Callable[..., Callable], torch_make: Callable[..., Any],
                  configs: list[Config], *, draw: Callable[[np.random.Generator], dict] | None = None,
                  cast: tuple[str, ...] = ("lr",), record: str = "lr", **case_kwargs) -> TrajectoryCase:
  """A case comparing ``jax_make(**kw)(k)`` with torch's ``torch_make(optimizer, **kw)`` for k = 0..K.

  ``draw(rng)`` gives the seeded values (keys the config does not fix); ``cast`` names the float
  arguments passed as float32 scalars in the float32 run; config params: ``K`` (last count),
  ``optimizer`` ("sgd" | "adam"), ``steps_per_epoch`` (``per_epoch`` cases).
  """

  def resolve(seed: int, kw: dict) -> dict:
    drawn = draw(np.random.default_rng(seed)) if draw is not None else {}
    return {**drawn, **kw}

  def run_jax(seed, dtype, *, K, optimizer="sgd", steps_per_epoch=1, **kw):
    kw = resolve(seed, kw)
    f = _f32(dtype)
    kw = {k: (f(v) if k in cast else v) for k, v in kw.items()}
    schedule = jax_make(**kw)
    if steps_per_epoch > 1:
      schedule = F.per_epoch(schedule, steps_per_epoch)
    return _jax_values(schedule, K)

  def run_torch(seed, dtype, *, K, optimizer="sgd", steps_per_epoch=1, **kw):
    kw = resolve(seed, kw)
    return _torch_values(lambda opt: torch_make(opt, **kw), K, optimizer=optimizer, lr=kw.get("lr", 0.1),
                         record=record, steps_per_epoch=steps_per_epoch)

  what = f"{record} at each count 0..K (eager, jit, vector)"
  return register(TrajectoryCase(name, "schedules", run_jax, run_torch, configs, what=what, **case_kwargs))


def _lr(rng: np.random.Generator) -> dict:
  return {"lr": float(10 ** rng.uniform(-3, 0))}


def _lr_gamma(rng: np.random.Generator) -> dict:
  return {"lr": float(10 ** rng.uniform(-3, 0)), "gamma": float(rng.uniform(0.3, 0.99))}


# --- step family ---------------------------------------------------------------------------

schedule_case(
    "step_lr", lambda lr, step_size, gamma: F.step_lr(lr, step_size, gamma),
    lambda opt, lr, step_size, gamma: S.StepLR(opt, step_size, gamma),
    [Config("s3", {"step_size": 3}, {"K": 40}),
     Config("s1-long", {"step_size": 1, "gamma": 0.995}, {"K": 2100}),
     Config("s7-g0.5", {"step_size": 7, "gamma": 0.5}, {"K": 60})],
    draw=_lr_gamma)

schedule_case(
    "multistep_lr", lambda lr, milestones, gamma: F.multistep_lr(lr, milestones, gamma),
    lambda opt, lr, milestones, gamma: S.MultiStepLR(opt, milestones, gamma),
    [Config("dup", {"milestones": [2, 5, 5]}, {"K": 12}),
     Config("zero-dup", {"milestones": [0, 3, 3, 10]}, {"K": 15}),
     Config("unsorted", {"milestones": [9, 4, 30]}, {"K": 40}),
     Config("empty", {"milestones": []}, {"K": 5})],
    draw=_lr_gamma)

schedule_case(
    "exponential_lr", lambda lr, gamma: F.exponential_lr(lr, gamma),
    lambda opt, lr, gamma: S.ExponentialLR(opt, gamma),
    [Config("short", {}, {"K": 50}),
     Config("long", {"gamma": 0.999}, {"K": 2100}),
     Config("grow", {"gamma": 1.01}, {"K": 60})],
    draw=_lr_gamma)

schedule_case(
    "constant_lr", lambda lr, factor, total_iters: F.constant_lr(lr, factor, total_iters),
    lambda opt, lr, factor, total_iters: S.ConstantLR(opt, factor, total_iters),
    [Config("default", {"factor": 1.0 / 3, "total_iters": 5}, {"K": 10}),
     Config("iters0", {"factor": 0.25, "total_iters": 0}, {"K": 5}),
     Config("factor1", {"factor": 1.0, "total_iters": 3}, {"K": 6}),
     Config("seeded", {"total_iters": 4}, {"K": 8})],
    draw=lambda rng: {**_lr(rng), "factor": float(rng.uniform(0.05, 1.0))})

schedule_case(
    "linear_lr", lambda lr, start_factor, end_factor, total_iters: F.linear_lr(lr, start_factor, end_factor,
                                                                               total_iters),
    lambda opt, lr, start_factor, end_factor, total_iters: S.LinearLR(opt, start_factor, end_factor, total_iters),
    [Config("default", {"start_factor": 1.0 / 3, "end_factor": 1.0, "total_iters": 5}, {"K": 10}),
     Config("decay-to-0", {"start_factor": 1.0, "end_factor": 0.0, "total_iters": 10}, {"K": 15}),
     Config("seeded", {"total_iters": 37}, {"K": 45}),
     Config("iters0", {"start_factor": 0.5, "end_factor": 0.25, "total_iters": 0}, {"K": 4})],
    draw=lambda rng: {**_lr(rng), "start_factor": float(rng.uniform(0.01, 1.0)),
                      "end_factor": float(rng.uniform(0.0, 1.0))})

schedule_case(
    "polynomial_lr", lambda lr, total_iters, power: F.polynomial_lr(lr, total_iters, power),
    lambda opt, lr, total_iters, power: S.PolynomialLR(opt, total_iters, power),
    [Config("linear", {"total_iters": 5, "power": 1.0}, {"K": 8}),
     Config("square", {"total_iters": 10, "power": 2.0}, {"K": 14}),
     Config("seeded", {"total_iters": 23}, {"K": 30}),
     Config("iters0", {"total_iters": 0, "power": 1.0}, {"K": 3})],
    draw=lambda rng: {**_lr(rng), "power": float(rng.uniform(0.2, 3.0))})

# --- cosine ----------------------------------------------------------------------------------

schedule_case(
    "cosine_annealing_lr", lambda lr, T_max, eta_min: F.cosine_annealing_lr(lr, T_max, eta_min),
    lambda opt, lr, T_max, eta_min: S.CosineAnnealingLR(opt, T_max, eta_min),
    [Config("T10-past-end", {"T_max": 10, "eta_min": 0.0}, {"K": 65}),
     Config("T7-eta", {"T_max": 7}, {"K": 50}),
     Config("T1", {"T_max": 1}, {"K": 6}),
     Config("T1000-long", {"T_max": 1000}, {"K": 2100}),
     Config("T300-past-table", {"T_max": 300, "eta_min": 0.0}, {"K": 2100})],
    draw=lambda rng: {**_lr(rng), "eta_min": float(10 ** rng.uniform(-6, -4))})

schedule_case(
    "cosine_annealing_warm_restarts",
    lambda lr, T_0, T_mult, eta_min: F.cosine_annealing_warm_restarts(lr, T_0, T_mult, eta_min),
    lambda opt, lr, T_0, T_mult, eta_min: S.CosineAnnealingWarmRestarts(opt, T_0, T_mult, eta_min),
    [Config("T3-mult2", {"T_0": 3, "T_mult": 2, "eta_min": 0.0}, {"K": 50}),
     Config("T5-mult1", {"T_0": 5, "T_mult": 1}, {"K": 30}),
     Config("T2-mult3", {"T_0": 2, "T_mult": 3}, {"K": 100}),
     Config("T1-mult1", {"T_0": 1, "T_mult": 1}, {"K": 5})],
    draw=lambda rng: {**_lr(rng), "eta_min": float(10 ** rng.uniform(-6, -4))})


def _hf_warmup_cosine(w: int, T: int) -> Callable[[int], float]:
  """transformers' get_cosine_schedule_with_warmup factor, held at 0 from total_steps on."""

  def factor(k: int) -> float:
    if k < w:
      return float(k) / float(max(1, w))
    progress = float(k - w) / float(max(1, T - w))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))

  return factor


schedule_case(
    "warmup_cosine", lambda lr, warmup_steps, total_steps: F.warmup_cosine(lr, warmup_steps, total_steps),
    lambda opt, lr, warmup_steps, total_steps: S.LambdaLR(opt, _hf_warmup_cosine(warmup_steps, total_steps)),
    [Config("w5-T20", {"warmup_steps": 5, "total_steps": 20}, {"K": 30}),
     Config("w0-T10", {"warmup_steps": 0, "total_steps": 10}, {"K": 12}),
     Config("w10-T10", {"warmup_steps": 10, "total_steps": 10}, {"K": 14}),
     Config("w13-T97", {"warmup_steps": 13, "total_steps": 97}, {"K": 100})],
    draw=_lr)

# --- cyclical --------------------------------------------------------------------------------


def _one_cycle_kw(kw: dict) -> dict:
  return {k: kw[k] for k in ("pct_start", "anneal_strategy", "three_phase") if k in kw}


schedule_case(
    "one_cycle_lr",
    lambda max_lr, total_steps, div_factor, final_div_factor, **kw: F.one_cycle_lr(
        max_lr, total_steps, div_factor=div_factor, final_div_factor=final_div_factor, **_one_cycle_kw(kw)),
    lambda opt, max_lr, total_steps, div_factor, final_div_factor, **kw: S.OneCycleLR(
        opt, max_lr, total_steps, div_factor=div_factor, final_div_factor=final_div_factor,
        **_one_cycle_kw(kw)),
    [Config("T10", {"total_steps": 10, "div_factor": 25.0, "final_div_factor": 1e4}, {"K": 10}),
     Config("T50-three", {"total_steps": 50, "three_phase": True}, {"K": 50}),
     Config("T40-linear", {"total_steps": 40, "anneal_strategy": "linear"}, {"K": 40}),
     Config("T37-three-linear", {"total_steps": 37, "three_phase": True, "anneal_strategy": "linear",
                                 "pct_start": 0.25}, {"K": 37}),
     Config("T100-pct0.05", {"total_steps": 100, "pct_start": 0.05}, {"K": 100})],
    draw=lambda rng: {"max_lr": float(10 ** rng.uniform(-3, 0)), "div_factor": float(rng.uniform(5, 50)),
                      "final_div_factor": float(10 ** rng.uniform(2, 5))},
    cast=("max_lr",))


def _torch_one_cycle_momentum(opt, total_steps, base_momentum, max_momentum, **kw):
  return S.OneCycleLR(opt, 1.0, total_steps, base_momentum=base_momentum, max_momentum=max_momentum,
                      **_one_cycle_kw(kw))


schedule_case(
    "one_cycle_momentum",
    lambda total_steps, base_momentum, max_momentum, **kw: F.one_cycle_momentum(
        total_steps, base_momentum, max_momentum, **_one_cycle_kw(kw)),
    _torch_one_cycle_momentum,
    [Config("sgd-T10", {"total_steps": 10, "base_momentum": 0.85, "max_momentum": 0.95}, {"K": 10}),
     Config("adam-T30-three", {"total_steps": 30, "three_phase": True}, {"K": 30, "optimizer": "adam"}),
     Config("sgd-T25-linear", {"total_steps": 25, "anneal_strategy": "linear"}, {"K": 25}),
     Config("adam-T40-three-linear", {"total_steps": 40, "three_phase": True, "anneal_strategy": "linear"},
            {"K": 40, "optimizer": "adam"})],
    draw=lambda rng: {"base_momentum": float(rng.uniform(0.5, 0.85)), "max_momentum": float(rng.uniform(0.9, 0.99))},
    cast=("base_momentum", "max_momentum"), record="momentum")


def _cyclic_kw(kw: dict) -> dict:
  return {k: kw[k] for k in ("step_size_down", "mode", "gamma") if k in kw}


schedule_case(
    "cyclic_lr",
    lambda base_lr, max_lr, step_size_up, **kw: F.cyclic_lr(base_lr, max_lr, step_size_up, **_cyclic_kw(kw)),
    lambda opt, base_lr, max_lr, step_size_up, **kw: S.CyclicLR(opt, base_lr, max_lr, step_size_up,
                                                                 cycle_momentum=False, **_cyclic_kw(kw)),
    [Config("triangular", {"step_size_up": 4}, {"K": 30}),
     Config("triangular2", {"step_size_up": 2, "step_size_down": 3, "mode": "triangular2"}, {"K": 40}),
     Config("exp_range", {"step_size_up": 3, "step_size_down": 5, "mode": "exp_range", "gamma": 0.97}, {"K": 60}),
     Config("down0", {"step_size_up": 5, "step_size_down": 0}, {"K": 20})],
    draw=lambda rng: {"base_lr": float(10 ** rng.uniform(-4, -2)), "max_lr": float(10 ** rng.uniform(-2, 0))},
    cast=("base_lr", "max_lr"))


def _torch_cyclic_momentum(opt, base_momentum, max_momentum, step_size_up, **kw):
  return S.CyclicLR(opt, 0.01, 0.1, step_size_up, base_momentum=base_momentum, max_momentum=max_momentum,
                    **_cyclic_kw(kw))


schedule_case(
    "cyclic_momentum",
    lambda base_momentum, max_momentum, step_size_up, **kw: F.cyclic_momentum(
        base_momentum, max_momentum, step_size_up, **_cyclic_kw(kw)),
    _torch_cyclic_momentum,
    [Config("sgd-triangular", {"step_size_up": 4}, {"K": 20}),
     Config("sgd-triangular2", {"step_size_up": 2, "step_size_down": 3, "mode": "triangular2"}, {"K": 30}),
     Config("adam-exp_range", {"step_size_up": 3, "mode": "exp_range", "gamma": 0.95}, {"K": 30, "optimizer": "adam"})],
    draw=lambda rng: {"base_momentum": float(rng.uniform(0.5, 0.85)), "max_momentum": float(rng.uniform(0.9, 0.99))},
    cast=("base_momentum", "max_momentum"), record="momentum")

# --- function-driven and composed ----------------------------------------------------------

# (jax factor, torch factor) pairs for LambdaLR / MultiplicativeLR.
_FACTORS: dict[str, tuple[Callable, Callable]] = {
    "pow": (lambda k: jnp.power(0.95, k.astype(jnp.float64)), lambda k: 0.95 ** k),
    "inverse": (lambda k: 1.0 / (k.astype(jnp.float64) + 1.0), lambda k: 1.0 / (k + 1.0)),
    "const": (lambda k: 0.9, lambda k: 0.9),
    "alternate": (lambda k: jnp.where(k % 2 == 1, 0.99, 0.9), lambda k: 0.99 if k % 2 == 1 else 0.9),
}

schedule_case(
    "lambda_lr", lambda lr, factor: F.lambda_lr(lr, _FACTORS[factor][0]),
    lambda opt, lr, factor: S.LambdaLR(opt, _FACTORS[factor][1]),
    [Config("pow", {"factor": "pow"}, {"K": 30}), Config("inverse", {"factor": "inverse"}, {"K": 20})],
    draw=_lr)

schedule_case(
    "multiplicative_lr", lambda lr, factor: F.multiplicative_lr(lr, _FACTORS[factor][0]),
    lambda opt, lr, factor: S.MultiplicativeLR(opt, _FACTORS[factor][1]),
    [Config("const", {"factor": "const"}, {"K": 40}), Config("alternate", {"factor": "alternate"}, {"K": 40}),
     Config("inverse", {"factor": "inverse"}, {"K": 12})],
    draw=_lr)

# Children of SequentialLR / ChainedScheduler, both sides built from the same spec (name, kwargs).
_CHILDREN: dict[str, tuple[Callable, Callable]] = {
    "step": (F.step_lr, S.StepLR), "multistep": (F.multistep_lr, S.MultiStepLR),
    "exponential": (F.exponential_lr, S.ExponentialLR), "constant": (F.constant_lr, S.ConstantLR),
    "linear": (F.linear_lr, S.LinearLR), "polynomial": (F.polynomial_lr, S.PolynomialLR),
    "cosine": (F.cosine_annealing_lr, S.CosineAnnealingLR),
    "warm_restarts": (F.cosine_annealing_warm_restarts, S.CosineAnnealingWarmRestarts),
}


def _jax_child(lr, spec):
  name, kw = spec
  if name == "multiplicative":
    return F.multiplicative_lr(lr, _FACTORS[kw["factor"]][0])
  if name == "lambda":
    return F.lambda_lr(lr, _FACTORS[kw["factor"]][0])
  if name == "one_cycle":
    return F.one_cycle_lr(lr * 25.0, **kw)  # torch's OneCycleLR sets initial_lr = max_lr / 25
  return _CHILDREN[name][0](lr, **kw)


def _torch_child(opt, spec):
  name, kw = spec
  if name == "multiplicative":
    return S.MultiplicativeLR(opt, _FACTORS[kw["factor"]][1])
  if name == "lambda":
    return S.LambdaLR(opt, _FACTORS[kw["factor"]][1])
  if name == "one_cycle":
    return S.OneCycleLR(opt, opt.param_groups[0]["lr"] * 25.0, cycle_momentum=False, **kw)
  return _CHILDREN[name][1](opt, **kw)


schedule_case(
    "sequential_lr",
    lambda lr, children, milestones: F.sequential_lr([_jax_child(lr, c) for c in children], milestones),
    lambda opt, lr, children, milestones: S.SequentialLR(opt, [_torch_child(opt, c) for c in children], milestones),
    [Config("linear-exp", {"children": [("linear", {"start_factor": 0.1, "total_iters": 5}),
                                        ("exponential", {"gamma": 0.5})], "milestones": [3]}, {"K": 10}),
     Config("milestone0", {"children": [("constant", {"factor": 0.1, "total_iters": 2}),
                                        ("exponential", {"gamma": 0.9})], "milestones": [0]}, {"K": 8}),
     Config("warmup-cosine-step", {"children": [("linear", {"start_factor": 0.01, "total_iters": 4}),
                                                ("cosine", {"T_max": 6, "eta_min": 1e-4}),
                                                ("step", {"step_size": 2, "gamma": 0.7})],
                                   "milestones": [4, 16]}, {"K": 30}),
     Config("dup-milestones", {"children": [("exponential", {"gamma": 0.8}), ("polynomial", {"total_iters": 3}),
                                            ("multistep", {"milestones": [1, 2], "gamma": 0.5})],
                               "milestones": [4, 4]}, {"K": 12}),
     Config("multiplicative-restart", {"children": [("exponential", {"gamma": 0.7}),
                                                    ("multiplicative", {"factor": "alternate"})],
                                       "milestones": [5]}, {"K": 15}),
     Config("cosine-restart", {"children": [("step", {"step_size": 2}),
                                            ("cosine", {"T_max": 5, "eta_min": 3e-3})],
                               "milestones": [3]}, {"K": 20}),
     Config("constant0-restart", {"children": [("exponential", {"gamma": 0.9}),
                                               ("constant", {"factor": 0.3, "total_iters": 0})],
                                  "milestones": [2]}, {"K": 6}),
     Config("one-cycle-then-lambda", {"children": [("one_cycle", {"total_steps": 10}),
                                                   ("lambda", {"factor": "pow"}),
                                                   ("warm_restarts", {"T_0": 3, "T_mult": 2})],
                                      "milestones": [10, 15]}, {"K": 30})],
    draw=_lr)

schedule_case(
    "chained",
    lambda lr, children: F.chained([_jax_child(lr, c) for c in children]),
    lambda opt, lr, children: S.ChainedScheduler([_torch_child(opt, c) for c in children]),
    [Config("constant-exp", {"children": [("constant", {"factor": 0.1, "total_iters": 2}),
                                          ("exponential", {"gamma": 0.9})]}, {"K": 20}),
     Config("linear-step-multistep", {"children": [("linear", {"start_factor": 0.2, "total_iters": 6}),
                                                   ("step", {"step_size": 4, "gamma": 0.6}),
                                                   ("multistep", {"milestones": [0, 5, 5, 11], "gamma": 0.8})]},
            {"K": 25}),
     Config("exp-poly-mult", {"children": [("exponential", {"gamma": 0.97}), ("polynomial", {"total_iters": 20,
                                                                                              "power": 0.5}),
                                           ("multiplicative", {"factor": "alternate"})]}, {"K": 25}),
     Config("const-exp-long", {"children": [("constant", {"factor": 0.5, "total_iters": 100}),
                                            ("exponential", {"gamma": 0.999})]}, {"K": 2100}),
     Config("finite", {"children": [("linear", {"start_factor": 0.3, "total_iters": 7}),
                                    ("constant", {"factor": 0.5, "total_iters": 3})]}, {"K": 12})],
    draw=_lr)

schedule_case(
    "per_epoch",
    lambda lr, child: _jax_child(lr, child),
    lambda opt, lr, child: _torch_child(opt, child),
    [Config("step-spe3", {"child": ("step", {"step_size": 2, "gamma": 0.5})}, {"K": 30, "steps_per_epoch": 3}),
     Config("cosine-spe4", {"child": ("cosine", {"T_max": 5})}, {"K": 50, "steps_per_epoch": 4}),
     Config("linear-spe7", {"child": ("linear", {"start_factor": 0.25, "total_iters": 4})},
            {"K": 40, "steps_per_epoch": 7})],
    draw=_lr)

# --- ReduceLROnPlateau ---------------------------------------------------------------------


def _metrics(rng: np.random.Generator, kind: str, n: int) -> list[float]:
  k = np.arange(n)
  if kind == "improving":
    m = 2.0 * np.exp(-k / 10.0) + 0.02 * rng.standard_normal(n)
  elif kind == "flat":
    m = np.full(n, 1.0)
  elif kind == "noisy":
    m = 1.0 + 0.05 * rng.standard_normal(n)
  elif kind == "plateaus":  # improves, stalls, improves: reductions, cooldown and recovery
    m = np.repeat(np.linspace(1.0, 0.5, n // 8 + 1), 8)[:n] + 1e-5 * rng.standard_normal(n)
  elif kind == "accuracy":
    m = 1.0 - np.exp(-k / 15.0) + 0.01 * rng.standard_normal(n)
  elif kind == "negative":
    m = -10.0 + 0.0005 * k + 1e-6 * rng.standard_normal(n)
  elif kind == "nan":
    m = 1.0 / (1.0 + k) + 0.01 * rng.standard_normal(n)
    m[rng.choice(n, n // 5, replace=False)] = np.nan
  else:
    raise ValueError(kind)
  return [float(v) for v in m]


def _plateau_kwargs(kw: dict) -> dict:
  return {k: v for k, v in kw.items() if k in ("mode", "factor", "patience", "threshold", "threshold_mode",
                                                   "cooldown", "min_lr", "eps")}


def _plateau_jax(seed, dtype, *, kind, n=60, base_lr=0.5, **kw):
  metrics = _metrics(np.random.default_rng(seed), kind, n)
  tx = ll.optim.reduce_lr_on_plateau(**_plateau_kwargs(kw), base_lr=base_lr)
  unit = jnp.ones((), dtype)
  out = []
  for how in ("eager", "jit"):
    update = tx.update if how == "eager" else jax.jit(tx.update)
    state = tx.init(unit)
    for k, m in enumerate(metrics):
      u, state = update(unit, state, value=jnp.asarray(m, dtype))
      if how == "eager":
        out.append({})
      out[k][how] = {"lr": np.asarray(state.lr), "applied": np.asarray(u)}
  return out


def _plateau_torch(seed, dtype, *, kind, n=60, base_lr=0.5, **kw):
  metrics = _metrics(np.random.default_rng(seed), kind, n)
  p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
  opt = torch.optim.SGD([p], lr=base_lr)
  sched = S.ReduceLROnPlateau(opt, **_plateau_kwargs(kw))
  out = []
  for m in metrics:
    opt.step()
    sched.step(np.float32(m) if dtype == "float32" else m)  # the metric losslab_jax receives
    lr = float(sched.get_last_lr()[0])
    step = {"lr": lr, "applied": lr / base_lr}
    out.append({"eager": step, "jit": step})
  return out


register(TrajectoryCase(
    "reduce_lr_on_plateau", "schedules", _plateau_jax, _plateau_torch,
    [Config("flat-p2", {"patience": 2}, {"kind": "flat", "n": 20}),
     Config("improving", {"patience": 3}, {"kind": "improving"}),
     Config("noisy-cooldown", {"patience": 2, "cooldown": 3, "factor": 0.5}, {"kind": "noisy"}),
     Config("plateaus-abs", {"patience": 4, "threshold": 1e-3, "threshold_mode": "abs", "cooldown": 1},
            {"kind": "plateaus", "n": 80}),
     Config("max-rel", {"mode": "max", "patience": 2, "factor": 0.3}, {"kind": "accuracy"}),
     Config("max-abs-min_lr", {"mode": "max", "patience": 1, "threshold": 0.01, "threshold_mode": "abs",
                               "min_lr": 0.02}, {"kind": "noisy"}),
     Config("eps-guard", {"patience": 0, "factor": 0.5, "eps": 0.01}, {"kind": "flat", "n": 12}),
     Config("negative-rel", {"patience": 1}, {"kind": "negative", "n": 40}),
     Config("nan", {"patience": 1, "factor": 0.7}, {"kind": "nan", "n": 50})],
    what="lr and the applied scale after each update(value=m_k)"))
