"""Whole-model training parity: the same model trained for 100 steps in JAX and in torch.

Each framework does everything itself, end to end: the forward pass (a flax.nnx model and a torch
module holding identical initial weights, :mod:`parity._models`), the loss, autodiff, gradient
clipping, the optimizer step and the learning-rate schedule. Both sides see the same mini-batches
in the same order. A run of ``steps`` optimizer steps gives ``steps + 1`` records; record ``k`` is
the state after ``k`` steps:

* ``params``: the parameters (record 0: the copied initial weights);
* ``loss``: the loss of mini-batch ``k`` at those parameters;
* ``grads``: its raw gradients, *before* clipping (what autodiff gives; the effect of clipping
  shows up in the next record's parameters);

all in torch's layout and names (``fc1.weight``, ``conv1.bias``, ...), compared record by record.

Both loops are the engine of :func:`parity.compare_training` (:mod:`parity._port._training`), so
the project's own whole-model parity and a user's port are checked by the same code. The JAX step:
``jax.value_and_grad`` of ``loss(nnx.merge(graphdef, params, rest)(x), y)``, then the update of
``optax.chain([ll.optim.clip_grad_norm(c),] <optimizer with its schedule>[, reduce_lr_on_plateau])``
with ``value=loss``. The torch step is ``zero_grad, loss.backward(), clip_grad_norm_, opt.step(),
scheduler.step()``. Weights are copied by :func:`parity.copy_weights` and compared through its
weight map.

Schedules (all of length :data:`STEPS`, also in the 1-step case):

* OneCycleLR, stepped after every ``opt.step()``: ``lr=ll.schedules.one_cycle_lr`` plus torch's
  momentum cycling, ``ll.schedules.one_cycle_momentum``, passed as SGD's/RMSprop's ``momentum`` or
  as ``betas[0]`` of AdamW/Lion (torch writes the cycled value into the group's ``momentum`` or
  ``betas``; so an RMSprop built with any momentum runs with 0.95 -> 0.85 -> 0.95).
* CosineAnnealingWarmRestarts: ``ll.schedules.cosine_annealing_warm_restarts``.
* ReduceLROnPlateau, stepped with every mini-batch loss *before* ``opt.step()``, so a step uses the
  lr decided from its own loss: that is what ``ll.optim.reduce_lr_on_plateau(base_lr=lr)`` chained
  after the optimizer does with ``update(..., value=loss)`` (its k-th update applies the lr torch
  has right after ``scheduler.step(m_k)``).

Cases (10 configs each; every loss, optimizer and schedule on both models, clipping in 8):

* ``training``: loss, grads, params for 100 steps; float64 at the default 1e-10, float32 at the
  measured bound in its ``tolerance_reason``.
* ``training_loss``: the loss of all 100 steps, float32 only, at the default 1e-5.
* ``training_first_step``: loss and params before and after the first step, float32 only, at the
  default 1e-5 (the parameters of later steps need more; see ``python -m parity drift``,
  :mod:`parity._drift`, for the per-step curves).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from parity import _models
from parity._case import Config, TrajectoryCase, register

STEPS = 100
BATCH = 16
DATASET = 128  # 8 mini-batches per epoch, reshuffled every epoch

LOSSES = ("cross_entropy", "focal", "mse", "huber")
OPTIMIZERS = ("sgd", "adamw", "rmsprop", "lion")
SCHEDULES = ("one_cycle", "cosine_warm_restarts", "plateau")
CLASSIFICATION = ("cross_entropy", "focal")
RECORD = ("loss", "grads", "params")

LABEL_SMOOTHING = 0.1
FOCAL_GAMMA = 2.0
HUBER_DELTA = 1.0


# --- data -------------------------------------------------------------------------------------


def make_data(seed: int, dtype: str, model: str, loss: str, steps: int):
  """``(xs, ys)``: the mini-batch of every step, in torch's layout; the same for both frameworks.

  A fixed dataset of :data:`DATASET` examples (standard normal inputs; targets from a random
  linear teacher: class = argmax of its outputs, or its outputs scaled to ~1.5 for regression, so
  that Huber sees residuals on both sides of ``delta``), cut into batches of :data:`BATCH` in a
  fresh random order every epoch. Floating data are float32 numbers in either dtype (and torch's
  initial weights are drawn in float32), so a float64 run with the same seed is the same problem
  in exact-er arithmetic: :mod:`parity._drift` uses it as the reference for float32 rounding.
  """
  rng = np.random.default_rng(seed)
  shape = _models.input_shape(model, DATASET, "torch")
  x = rng.standard_normal(shape)
  flat = x.reshape(DATASET, -1)
  teacher = rng.standard_normal((flat.shape[1], _models.NUM_OUT)) / np.sqrt(flat.shape[1])
  out = flat @ teacher
  if loss in CLASSIFICATION:
    y = np.argmax(out + 0.3 * rng.standard_normal(out.shape), axis=1).astype(np.int64)
  else:
    y = 1.5 * out + 0.1 * rng.standard_normal(out.shape)
  per_epoch = DATASET // BATCH
  order = np.concatenate([rng.permutation(DATASET) for _ in range(-(-steps // per_epoch))])
  idx = order[: steps * BATCH].reshape(steps, BATCH)
  return _f32_exact(x, dtype)[idx], (y if y.dtype == np.int64 else _f32_exact(y, dtype))[idx]


def _f32_exact(a: np.ndarray, dtype: str) -> np.ndarray:
  """``a`` rounded to float32 first: the float64 run then trains on exactly the float32 data."""
  return a.astype(np.float32).astype(dtype)


# --- losses -----------------------------------------------------------------------------------


def _jax_loss(loss: str) -> Callable[[Any, Any], Any]:
  import losslab_jax as ll

  return {
      "cross_entropy": lambda out, y: ll.losses.cross_entropy(out, y, label_smoothing=LABEL_SMOOTHING),
      "focal": lambda out, y: ll.losses.focal_loss(out, y, gamma=FOCAL_GAMMA),
      "mse": ll.losses.mse_loss,
      "huber": lambda out, y: ll.losses.huber_loss(out, y, delta=HUBER_DELTA),
  }[loss]


def _torch_loss(loss: str) -> Callable[[Any, Any], Any]:
  import torch.nn.functional as F

  from parity.reference.focal import FocalLoss

  return {
      "cross_entropy": lambda out, y: F.cross_entropy(out, y, label_smoothing=LABEL_SMOOTHING),
      "focal": FocalLoss(gamma=FOCAL_GAMMA),
      "mse": F.mse_loss,
      "huber": lambda out, y: F.huber_loss(out, y, delta=HUBER_DELTA),
  }[loss]


# --- optimizer + schedule ---------------------------------------------------------------------


def _check(optimizer: str, schedule: str, loss: str, model: str) -> None:
  for value, allowed in ((optimizer, OPTIMIZERS), (schedule, SCHEDULES), (loss, LOSSES),
                         (model, _models.MODELS)):
    if value not in allowed:
      raise ValueError(f"training case: expected one of {allowed}, got {value!r}")


def jax_transform(*, optimizer: str, schedule: str, lr: float, clip: float | None,
                  total_steps: int = STEPS, momentum: float = 0.9, weight_decay: float = 0.0,
                  schedule_kw: dict | None = None):
  """The JAX update chain: ``[clip_grad_norm] -> optimizer(lr schedule) [-> reduce_lr_on_plateau]``.

  Args:
    optimizer: ``"sgd"`` (always Nesterov) | ``"adamw"`` | ``"rmsprop"`` | ``"lion"``.
    schedule: ``"one_cycle"`` (``lr`` is ``max_lr``; cycles momentum / beta1 too, overriding
      ``momentum``) | ``"cosine_warm_restarts"`` | ``"plateau"`` (``lr`` is the base lr).
    lr: the base (or peak) learning rate.
    clip: ``max_norm`` of ``clip_grad_norm``, or None for no clipping.
    total_steps: the length of the OneCycle schedule.
    momentum: SGD/RMSprop momentum, or AdamW/Lion ``betas[0]``, when not cycled.
    weight_decay: the optimizer's own (L2 for SGD/RMSprop, decoupled for AdamW/Lion).
    schedule_kw: the schedule's keywords (torch's names: ``T_0``, ``T_mult``, ``eta_min``;
      ``factor``, ``patience``, ``min_lr``).
  """
  import optax

  import losslab_jax as ll

  skw = dict(schedule_kw or {})
  mom: Any = momentum
  lr_arg: Any = lr
  if schedule == "one_cycle":
    lr_arg = ll.schedules.one_cycle_lr(lr, total_steps, **skw)
    mom = ll.schedules.one_cycle_momentum(total_steps)
  elif schedule == "cosine_warm_restarts":
    lr_arg = ll.schedules.cosine_annealing_warm_restarts(lr, **skw)
  if optimizer == "sgd":
    opt = ll.optim.sgd(lr_arg, momentum=mom, nesterov=True, weight_decay=weight_decay)
  elif optimizer == "adamw":
    opt = ll.optim.adamw(lr_arg, betas=(mom, 0.999), weight_decay=weight_decay)
  elif optimizer == "rmsprop":
    opt = ll.optim.rmsprop(lr_arg, momentum=mom, weight_decay=weight_decay)
  else:
    opt = ll.optim.lion(lr_arg, betas=(mom, 0.99), weight_decay=weight_decay)
  parts = [] if clip is None else [ll.optim.clip_grad_norm(clip)]
  parts.append(opt)
  if schedule == "plateau":
    parts.append(ll.optim.reduce_lr_on_plateau(**skw, base_lr=lr))
  return optax.chain(*parts)


def torch_optimizer(params, *, optimizer: str, schedule: str, lr: float, total_steps: int = STEPS,
                    momentum: float = 0.9, weight_decay: float = 0.0, schedule_kw: dict | None = None):
  """``(optimizer, scheduler)`` in torch for the configuration :func:`jax_transform` takes."""
  import lion_pytorch
  import torch

  skw = dict(schedule_kw or {})
  if optimizer == "sgd":
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
  elif optimizer == "adamw":
    opt = torch.optim.AdamW(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
  elif optimizer == "rmsprop":
    opt = torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
  else:
    opt = lion_pytorch.Lion(params, lr=lr, betas=(momentum, 0.99), weight_decay=weight_decay)
  sched = torch.optim.lr_scheduler
  if schedule == "one_cycle":
    return opt, sched.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, **skw)
  if schedule == "cosine_warm_restarts":
    return opt, sched.CosineAnnealingWarmRestarts(opt, **skw)
  return opt, sched.ReduceLROnPlateau(opt, **skw)


# --- the two training loops: parity.compare_training's engine -------------------------------------


def _freeze(kw: dict) -> tuple:
  return tuple(sorted((k, _freeze(v) if isinstance(v, dict) else v) for k, v in kw.items()))


def _thaw(frozen: tuple) -> dict:
  return {k: _thaw(v) if isinstance(v, tuple) and v and isinstance(v[0], tuple) else v for k, v in frozen}


@functools.lru_cache(maxsize=64)
def _jax_step(model: str, dtype: str, loss: str, frozen_opt: tuple):
  """``(tx, step functions)`` for one configuration; cached so that short and long runs share a compile."""
  from flax import nnx

  from parity._port._training import make_jax_step

  graphdef, _, _ = nnx.split(_models.build_nnx(model, dtype), nnx.Param, ...)
  tx = jax_transform(**_thaw(frozen_opt))
  loss_fn = _jax_loss(loss)
  return tx, make_jax_step(graphdef, tx, lambda m, b: loss_fn(m(b[0]), b[1]))


def _records(run, steps: int, record: tuple[str, ...]) -> list[dict]:
  return [{k: v for k, v in (("loss", np.asarray(run.loss[k])), ("grads", run.grads[k]), ("params", run.params[k]))
           if k in record} for k in range(steps + 1)]


def run_jax(seed: int, dtype: str, *, model: str, loss: str, steps: int = STEPS,
            record: tuple[str, ...] = RECORD, **opt_kw) -> list[dict]:
  """The JAX run: ``steps + 1`` records ``{"loss", "grads", "params"}`` in torch's layout.

  Record ``k`` holds the parameters after ``k`` optimizer steps and the loss and raw gradients
  there, on mini-batch ``k``; record 0 is the copied initial state, so the comparison also sees
  the magnitudes the parameters started from. The loop is :func:`parity._port._training.jax_steps`
  (the engine of :func:`parity.compare_training`).
  """
  from parity._port._training import jax_steps

  _check(opt_kw["optimizer"], opt_kw["schedule"], loss, model)
  _, nnx_model, weight_map = _models.build_pair(model, seed, dtype)
  tx, step_fns = _jax_step(model, dtype, loss, _freeze(opt_kw))
  xs, ys = make_data(seed, dtype, model, loss, steps + 1)
  run = jax_steps(nnx_model, tx, None, list(zip(xs, ys)), weight_map=weight_map, dtype=dtype, step_fns=step_fns,
                  jax_batch=lambda b: (_models.to_nnx_input(model, b[0]), b[1]), last_update=False)
  return _records(run, steps, record)


def run_torch(seed: int, dtype: str, *, model: str, loss: str, steps: int = STEPS, clip: float | None,
              record: tuple[str, ...] = RECORD, **opt_kw) -> list[dict]:
  """The torch run, the same records as :func:`run_jax` (loop: :func:`parity._port._training.torch_steps`)."""
  import torch

  from parity._port._training import torch_steps

  _check(opt_kw["optimizer"], opt_kw["schedule"], loss, model)
  threads = torch.get_num_threads()
  torch.set_num_threads(1)  # tiny models: more threads only add contention (10x slower on 2 busy cores)
  try:
    net = _models.build_torch(model, seed, dtype)
    opt, sched = torch_optimizer(net.parameters(), **opt_kw)
    loss_fn = _torch_loss(loss)
    xs, ys = make_data(seed, dtype, model, loss, steps + 1)
    run = torch_steps(net, opt, lambda m, b: loss_fn(m(b[0]), b[1]), list(zip(xs, ys)), dtype=dtype,
                      scheduler=sched, scheduler_interval="plateau" if opt_kw["schedule"] == "plateau" else "step",
                      clip_grad_norm=clip, last_update=False)
  finally:
    torch.set_num_threads(threads)
  return _records(run, steps, record)


# --- configurations ---------------------------------------------------------------------------


def _cfg(id: str, model: str, loss: str, optimizer: str, schedule: str, lr: float, clip: float | None,
         **extra) -> Config:
  return Config(id, {"model": model, "loss": loss, "optimizer": optimizer, "schedule": schedule, "lr": lr,
                     "clip": clip, **extra})


WR = {"T_0": 20, "T_mult": 2, "eta_min": 1e-4}  # restarts at steps 20 and 60
PLATEAU = {"factor": 0.3, "patience": 8, "min_lr": 1e-5}

CONFIGS = [
    _cfg("mlp-ce_ls-sgd_nesterov-one_cycle-clip", "mlp", "cross_entropy", "sgd", "one_cycle", 0.1, 0.7,
         weight_decay=1e-3),
    _cfg("mlp-focal-adamw-warm_restarts-clip", "mlp", "focal", "adamw", "cosine_warm_restarts", 1e-2, 0.5,
         weight_decay=1e-2, schedule_kw=WR),
    _cfg("mlp-mse-rmsprop-plateau-clip", "mlp", "mse", "rmsprop", "plateau", 3e-3, 0.3, momentum=0.5,
         schedule_kw=PLATEAU),
    _cfg("mlp-huber-lion-one_cycle", "mlp", "huber", "lion", "one_cycle", 3e-3, None, weight_decay=0.1),
    _cfg("mlp-ce_ls-rmsprop-one_cycle-clip", "mlp", "cross_entropy", "rmsprop", "one_cycle", 3e-3, 1.0),
    _cfg("cnn-ce_ls-adamw-one_cycle-clip", "cnn", "cross_entropy", "adamw", "one_cycle", 1e-2, 1.0,
         weight_decay=1e-2),
    _cfg("cnn-focal-sgd_nesterov-warm_restarts-clip", "cnn", "focal", "sgd", "cosine_warm_restarts", 0.05,
         1.0, schedule_kw=WR),
    _cfg("cnn-mse-lion-plateau-clip", "cnn", "mse", "lion", "plateau", 3e-3, 1.0, schedule_kw=PLATEAU),
    _cfg("cnn-huber-rmsprop-warm_restarts", "cnn", "huber", "rmsprop", "cosine_warm_restarts", 3e-3, None,
         momentum=0.0, schedule_kw=WR),
    _cfg("cnn-ce_ls-sgd_nesterov-plateau-clip", "cnn", "cross_entropy", "sgd", "plateau", 0.1, 0.7,
         schedule_kw={**PLATEAU, "patience": 5}),
]

F32_RTOL = 3e-4

register(TrajectoryCase(
    "training", "training", run_jax, run_torch, CONFIGS,
    rtol={"float32": F32_RTOL},
    tolerance_reason=(
        "float32, measured per step by `python -m parity drift`: the raw gradients differ by up to "
        "1.4e-4 already at step 0, on identical weights and data, from batch-sum cancellation (entries "
        "just above the 1e-3 floor with condition numbers ~2e3; torch float32 is itself up to 8e-5 "
        "from the float64 gradient there); the parameters drift from <= 3e-6 after step 1 to 1e-5 "
        "within 3..25 steps (RMSprop/AdamW first: per-element normalisation turns a tiny entry's "
        "gradient rounding into a full-size step) and to <= 5e-5 at step 100, as far as torch float32 "
        "is from float64; the loss stays <= 1e-6 throughout (checked at 1e-5 by `training_loss`). "
        "3e-4 is 2x the worst measured. float64 keeps the default 1e-10 (measured <= 2e-13)."),
    what=f"loss, raw grads and params at each of {STEPS + 1} states ({STEPS} steps)",
))

register(TrajectoryCase(
    "training_loss", "training", run_jax, run_torch,
    [Config(c.id, {**c.kwargs, "record": ("loss",)}) for c in CONFIGS],
    what=f"the mini-batch loss at each of {STEPS + 1} states, float32 at the default tolerance",
    dtypes=("float32",),
))

register(TrajectoryCase(
    "training_first_step", "training", run_jax, run_torch,
    [Config(c.id, {**c.kwargs, "steps": 1, "record": ("loss", "params")}) for c in CONFIGS],
    what="loss and params before and after the first step, float32 at the default tolerance",
    dtypes=("float32",),
))
