"""End-to-end parity: optimizers driven by ``ll.schedules`` against torch's optimizer + scheduler.

100 steps of the shared optimizer problem (:mod:`parity.cases._optim_problem`, teacher-forced
gradients). The torch side is the usual loop, ``optimizer.step(); scheduler.step()``, with torch's
own scheduler writing the lr (and, for OneCycleLR, ``betas[0]``) into the param group; the
losslab_jax side passes the schedules as ``lr=`` and ``betas=(schedule, b2)`` / ``momentum=``.

* Adam + OneCycleLR(total_steps=100, cycle_momentum=True): the 100th ``scheduler.step()`` is the
  last one torch allows (count = total_steps).
* SGD(momentum) + CosineAnnealingWarmRestarts.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import lr_scheduler as S

import losslab_jax as ll
from parity._case import Config, register
from parity.cases._optim_problem import optimizer_case

STEPS = 100


class _WithScheduler:
  """``step()`` = ``optimizer.step()`` then ``scheduler.step()``, the order torch documents."""

  def __init__(self, opt: torch.optim.Optimizer, sched: Any):
    self.opt, self.sched = opt, sched

  def zero_grad(self) -> None:
    self.opt.zero_grad()

  def step(self) -> None:
    self.opt.step()
    self.sched.step()


def _adam_one_cycle_jax(max_lr, pct_start=0.3, anneal_strategy="cos", three_phase=False, base_momentum=0.85,
                        max_momentum=0.95, weight_decay=0.0):
  phases = {"pct_start": pct_start, "anneal_strategy": anneal_strategy, "three_phase": three_phase}
  lr = ll.schedules.one_cycle_lr(max_lr, STEPS, **phases)
  beta1 = ll.schedules.one_cycle_momentum(STEPS, base_momentum, max_momentum, **phases)
  return ll.optim.adam(lr=lr, betas=(beta1, 0.999), weight_decay=weight_decay)


def _adam_one_cycle_torch(named_params, max_lr, pct_start=0.3, anneal_strategy="cos", three_phase=False,
                          base_momentum=0.85, max_momentum=0.95, weight_decay=0.0):
  opt = torch.optim.Adam(list(named_params.values()), lr=1e-3, weight_decay=weight_decay)
  sched = S.OneCycleLR(opt, max_lr, STEPS, pct_start=pct_start, anneal_strategy=anneal_strategy,
                       three_phase=three_phase, base_momentum=base_momentum, max_momentum=max_momentum)
  return _WithScheduler(opt, sched)


register(optimizer_case(
    "adam_one_cycle", _adam_one_cycle_jax, _adam_one_cycle_torch,
    [Config("cos", {"max_lr": 0.05}),
     Config("three-phase-linear", {"max_lr": 0.03, "three_phase": True, "anneal_strategy": "linear"}),
     Config("pct0.1-wd", {"max_lr": 0.02, "pct_start": 0.1, "base_momentum": 0.8, "max_momentum": 0.9,
                          "weight_decay": 0.01})],
    steps=STEPS, group="schedules"))


def _sgd_warm_restarts_jax(lr, T_0, T_mult=1, eta_min=0.0, momentum=0.9, nesterov=False):
  schedule = ll.schedules.cosine_annealing_warm_restarts(lr, T_0, T_mult, eta_min)
  return ll.optim.sgd(lr=schedule, momentum=momentum, nesterov=nesterov)


def _sgd_warm_restarts_torch(named_params, lr, T_0, T_mult=1, eta_min=0.0, momentum=0.9, nesterov=False):
  opt = torch.optim.SGD(list(named_params.values()), lr=lr, momentum=momentum, nesterov=nesterov)
  return _WithScheduler(opt, S.CosineAnnealingWarmRestarts(opt, T_0, T_mult, eta_min))


register(optimizer_case(
    "sgd_warm_restarts", _sgd_warm_restarts_jax, _sgd_warm_restarts_torch,
    [Config("T10-mult2", {"lr": 0.05, "T_0": 10, "T_mult": 2, "eta_min": 1e-4}),
     Config("T7-mult1-nesterov", {"lr": 0.03, "T_0": 7, "momentum": 0.8, "nesterov": True}),
     Config("T3-mult3", {"lr": 0.02, "T_0": 3, "T_mult": 3})],
    steps=STEPS, group="schedules"))
