"""Parity cases for the torch.optim family: SGD, Adam, AdamW, Adamax, NAdam, RAdam, RMSprop,
Adagrad, Adadelta and lion-pytorch's Lion.

Every case runs the shared 50-step problem of :mod:`parity.cases._optim_problem` (teacher-forced
gradients). A hyperparameter given as a schedule (``lr``, ``momentum``, ``betas[0]``) is a
function of the update count built from jnp ops, so the same function drives both sides: the
losslab_jax side calls it with the traced count, the torch side (:class:`Scheduled`) writes its
value into ``param_groups`` before each ``step()``, which is what torch's LambdaLR, OneCycleLR and
CyclicLR do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import lion_pytorch
import torch

import losslab_jax as ll
from parity._case import Config, register
from parity.cases._optim_problem import optimizer_case


class Scheduled:
  """A torch optimizer whose ``lr`` / ``momentum`` / ``betas[0]`` follow schedules ``k -> value``.

  Before the k-th ``step()`` (0-based) every group gets ``schedule(k)``, as after k scheduler steps.
  """

  def __init__(self, cls: type, named_params: dict, **kwargs: Any):
    self.schedules: dict[str, Callable] = {}
    for name in ("lr", "momentum"):
      if callable(kwargs.get(name)):
        self.schedules[name] = kwargs[name]
        kwargs[name] = float(kwargs[name](0))
    betas = kwargs.get("betas")
    if betas is not None and callable(betas[0]):
      self.schedules["beta1"] = betas[0]
      kwargs["betas"] = (float(betas[0](0)), betas[1])
    self.opt = cls(list(named_params.values()), **kwargs)
    self.k = 0

  def zero_grad(self) -> None:
    self.opt.zero_grad()

  def step(self) -> None:
    for group in self.opt.param_groups:
      for name, fn in self.schedules.items():
        value = float(fn(self.k))
        if name == "beta1":
          group["betas"] = (value, group["betas"][1])
        else:
          group[name] = value
    self.opt.step()
    self.k += 1


def _torch(cls: type) -> Callable[..., Scheduled]:
  return lambda named_params, **kwargs: Scheduled(cls, named_params, **kwargs)


# Schedules: jnp expressions of the count k (a traced int32 on the jax side, an int on torch's).
def exp_decay(lr0: float, gamma: float) -> Callable:
  """LambdaLR(lambda k: gamma ** k) on base lr0."""
  return lambda k: lr0 * jnp.power(gamma, jnp.asarray(k, jnp.result_type(float)))


def cos_cycle(low: float, high: float, period: int) -> Callable:
  """A cosine wave between high (k = 0) and low, like OneCycleLR's momentum (high -> low -> high)."""
  def fn(k):
    k = jnp.asarray(k, jnp.result_type(float))
    return low + (high - low) * 0.5 * (1.0 + jnp.cos(2.0 * math.pi * k / period))

  return fn


def one_cycle_lr(max_lr: float, steps: int) -> Callable:
  """A cosine one-cycle lr: max_lr / 25 up to max_lr at 30 % of ``steps``, then down to ~0."""
  up = 0.3 * steps

  def fn(k):
    k = jnp.asarray(k, jnp.result_type(float))
    lo = max_lr / 25.0
    rise = lo + (max_lr - lo) * 0.5 * (1.0 - jnp.cos(math.pi * k / up))
    fall = max_lr * 0.5 * (1.0 + jnp.cos(math.pi * (k - up) / (steps - up)))
    return jnp.where(k < up, rise, fall)

  return fn


def _case(name, jax_factory, torch_cls, configs, **kw):
  return register(optimizer_case(name, jax_factory, _torch(torch_cls), configs, **kw))


_case("adam", ll.optim.adam, torch.optim.Adam, [
    Config("default"),
    Config("lr0.05", {"lr": 0.05}),
    Config("wd-l2", {"lr": 0.01, "weight_decay": 0.1}),
    Config("amsgrad", {"lr": 0.02, "amsgrad": True}),
    Config("amsgrad-wd-maximize", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
    Config("betas-eps", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-3}),
    Config("decoupled", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    Config("lr-schedule", {"lr": exp_decay(0.05, 0.95)}),
    Config("one-cycle-beta1", {"lr": one_cycle_lr(0.05, 50), "betas": (cos_cycle(0.85, 0.95, 50), 0.999)}),
])

_case("adamw", ll.optim.adamw, torch.optim.AdamW, [
    Config("default"),
    Config("lr0.02-wd0.1", {"lr": 0.02, "weight_decay": 0.1}),
    Config("amsgrad", {"lr": 0.02, "amsgrad": True}),
    Config("maximize", {"lr": 0.01, "maximize": True}),
    Config("no-wd", {"lr": 0.01, "weight_decay": 0.0}),
    Config("lr-schedule", {"lr": exp_decay(0.05, 0.95), "weight_decay": 0.05}),
    Config("one-cycle-beta1", {"lr": one_cycle_lr(0.05, 50), "betas": (cos_cycle(0.85, 0.95, 50), 0.999),
                               "weight_decay": 0.1}),
])

_case("sgd", ll.optim.sgd, torch.optim.SGD, [
    Config("plain", {"lr": 0.05}),
    Config("momentum", {"lr": 0.02, "momentum": 0.9}),
    Config("dampening", {"lr": 0.02, "momentum": 0.9, "dampening": 0.5}),
    Config("nesterov-wd", {"lr": 0.02, "momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    Config("wd-maximize", {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.1, "maximize": True}),
    Config("lr-schedule", {"lr": exp_decay(0.05, 0.95), "momentum": 0.9, "dampening": 0.1}),
    Config("one-cycle-momentum", {"lr": one_cycle_lr(0.05, 50), "momentum": cos_cycle(0.85, 0.95, 50)}),
    Config("cyclic-momentum-nesterov", {"lr": one_cycle_lr(0.03, 50), "momentum": cos_cycle(0.8, 0.9, 20),
                                        "nesterov": True}),
])

_case("adamax", ll.optim.adamax, torch.optim.Adamax, [
    Config("default"),
    Config("lr0.02-wd", {"lr": 0.02, "weight_decay": 0.1}),
    Config("betas-eps-maximize", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-3, "maximize": True}),
    Config("lr-schedule", {"lr": exp_decay(0.03, 0.95)}),
    Config("one-cycle-beta1", {"lr": one_cycle_lr(0.03, 50), "betas": (cos_cycle(0.85, 0.95, 50), 0.999)}),
])

_case("nadam", ll.optim.nadam, torch.optim.NAdam, [
    Config("default"),
    Config("lr0.02-wd", {"lr": 0.02, "weight_decay": 0.1}),
    Config("decoupled", {"lr": 0.02, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    Config("momentum-decay-maximize", {"lr": 0.01, "momentum_decay": 0.05, "maximize": True}),
    Config("betas-eps", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-3}),
    Config("lr-schedule", {"lr": exp_decay(0.03, 0.95)}),
    Config("one-cycle-beta1", {"lr": one_cycle_lr(0.03, 50), "betas": (cos_cycle(0.85, 0.95, 50), 0.999)}),
])

_case("radam", ll.optim.radam, torch.optim.RAdam, [
    Config("default"),
    Config("lr0.02-wd", {"lr": 0.02, "weight_decay": 0.1}),
    Config("decoupled-maximize", {"lr": 0.02, "weight_decay": 0.1, "decoupled_weight_decay": True,
                                  "maximize": True}),
    Config("eps0.1", {"lr": 0.02, "eps": 0.1}),
    Config("beta2-0.99", {"lr": 0.01, "betas": (0.8, 0.99)}),
    Config("lr-schedule", {"lr": exp_decay(0.03, 0.95)}),
    Config("one-cycle-beta1", {"lr": one_cycle_lr(0.03, 50), "betas": (cos_cycle(0.85, 0.95, 50), 0.999)}),
])

_case("rmsprop", ll.optim.rmsprop, torch.optim.RMSprop, [
    Config("default"),
    Config("lr1e-3-alpha0.9", {"lr": 1e-3, "alpha": 0.9}),
    Config("centered", {"lr": 1e-3, "centered": True}),
    Config("momentum", {"lr": 1e-3, "momentum": 0.9}),
    Config("centered-momentum-wd", {"lr": 1e-3, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    Config("eps-maximize", {"lr": 1e-3, "eps": 1e-2, "maximize": True}),
    Config("lr-schedule-momentum", {"lr": exp_decay(3e-3, 0.95), "momentum": 0.9}),
    Config("one-cycle-momentum", {"lr": one_cycle_lr(3e-3, 50), "momentum": cos_cycle(0.85, 0.95, 50),
                                  "centered": True}),
])

_case("adagrad", ll.optim.adagrad, torch.optim.Adagrad, [
    Config("default"),
    Config("lr0.1-wd", {"lr": 0.1, "weight_decay": 0.1}),
    Config("lr-decay", {"lr": 0.1, "lr_decay": 0.05}),
    Config("initial-accumulator", {"lr": 0.05, "initial_accumulator_value": 0.1}),
    Config("eps-maximize", {"lr": 0.05, "eps": 1e-2, "maximize": True}),
    Config("lr-schedule-decay", {"lr": exp_decay(0.1, 0.95), "lr_decay": 0.01}),
])

_case("adadelta", ll.optim.adadelta, torch.optim.Adadelta, [
    Config("default"),
    Config("lr0.5-rho", {"lr": 0.5, "rho": 0.95}),
    Config("wd-maximize", {"weight_decay": 0.1, "maximize": True}),
    Config("eps1e-3", {"lr": 0.1, "eps": 1e-3}),
    Config("lr-schedule", {"lr": exp_decay(2.0, 0.95)}),
])

_case("lion", ll.optim.lion, lion_pytorch.Lion, [
    Config("default"),
    Config("lr1e-3", {"lr": 1e-3}),
    Config("wd", {"lr": 1e-3, "weight_decay": 0.5}),
    Config("betas", {"lr": 3e-3, "betas": (0.95, 0.98)}),
    Config("lr-schedule-wd", {"lr": exp_decay(3e-3, 0.95), "weight_decay": 0.1}),
    Config("one-cycle-beta1", {"lr": one_cycle_lr(3e-3, 50), "betas": (cos_cycle(0.85, 0.95, 50), 0.99)}),
])
