"""Parity cases for Hugging Face transformers' schedules (``ll.schedules.*_with_warmup``, ``wsd_schedule``,
``inverse_sqrt_schedule``) and the torchvision "linear warmup then cosine" recipe.

The reference is the real ``transformers.get_<name>`` building its ``LambdaLR`` on a one-parameter
SGD optimizer; the trajectory holds ``get_last_lr()[0]`` after k calls of ``optimizer.step();
scheduler.step()`` for every k from 0 to past the end of the schedule, and the losslab_jax value
three ways (eager call with a Python int, ``jax.jit`` with an int32 count, one call on
``arange(K + 1)``), as ``parity.cases.schedules`` does. In the float32 run ``lr`` reaches the
losslab_jax side as an ``np.float32`` scalar (so the schedule computes in float32) and torch keeps
the Python double. transformers is part of the ``parity`` extra.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from torch.optim import lr_scheduler as S

import losslab_jax as ll
from parity._case import Config, TrajectoryCase, register
from parity.cases.schedules import _f32, _jax_values, _lr, _torch_values

F = ll.schedules


def _transformers() -> Any:
  try:
    import transformers
  except ImportError as exc:  # pragma: no cover - the parity extra installs it
    raise ImportError("the hf_* parity cases need Hugging Face transformers (in the `parity` extra):"
                      " pip install -e '.[parity]'") from exc
  return transformers


def _hf(name: str) -> Callable[..., Any]:
  """``transformers.get_<name>(optimizer, **kw)``, without its warnings (wsd warns on purpose)."""

  def make(opt, lr, **kw):
    del lr  # the optimizer carries it, as in transformers
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      return getattr(_transformers(), f"get_{name}")(opt, **kw)

  return make


def _ours(name: str) -> Callable[..., Any]:
  def make(lr, **kw):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      return getattr(F, name)(lr, **kw)

  return make


def schedule_case(name: str, jax_make: Callable[..., Any], torch_make: Callable[..., Any], configs: list[Config],
                  draw: Callable[[np.random.Generator], dict]) -> None:
  """``jax_make(lr, **kw)(k)`` against torch's ``torch_make(optimizer, lr, **kw)`` for k = 0..K.

  torch keeps the lr as a Python double; in the float32 run that reference is rounded to float32
  (a relative change of at most 6e-8), since the comparator requires the dtypes to match.
  """

  def run_jax(seed, dtype, *, K, **kw):
    kw = {**draw(np.random.default_rng(seed)), **kw}
    kw["lr"] = _f32(dtype)(kw["lr"])
    return _jax_values(jax_make(**kw), K)

  def run_torch(seed, dtype, *, K, **kw):
    kw = {**draw(np.random.default_rng(seed)), **kw}
    values = _torch_values(lambda opt: torch_make(opt, **kw), K, lr=kw["lr"])
    return [{k: np.asarray(v, dtype=dtype) for k, v in step.items()} for step in values]

  register(TrajectoryCase(name, "schedules", run_jax, run_torch, configs,
                          what="lr at each count 0..K (eager, jit, vector)"))


def hf_case(name: str, configs: list[Config]) -> None:
  schedule_case(f"hf_{name}", _ours(name), _hf(name), configs, draw=_lr)


hf_case("linear_schedule_with_warmup", [
    Config("w10-T100", {"num_warmup_steps": 10, "num_training_steps": 100}, {"K": 120}),
    Config("w0-T37", {"num_warmup_steps": 0, "num_training_steps": 37}, {"K": 45}),
    Config("w7-T7", {"num_warmup_steps": 7, "num_training_steps": 7}, {"K": 12}),
    Config("w12-T5", {"num_warmup_steps": 12, "num_training_steps": 5}, {"K": 16}),
])

hf_case("cosine_schedule_with_warmup", [
    Config("w10-T100", {"num_warmup_steps": 10, "num_training_steps": 100}, {"K": 130}),
    Config("w0-T37", {"num_warmup_steps": 0, "num_training_steps": 37}, {"K": 80}),
    Config("cycles1.5", {"num_warmup_steps": 3, "num_training_steps": 61, "num_cycles": 1.5}, {"K": 70}),
    Config("w7-T7", {"num_warmup_steps": 7, "num_training_steps": 7}, {"K": 12}),
])

hf_case("cosine_with_hard_restarts_schedule_with_warmup", [
    Config("w10-T100-c1", {"num_warmup_steps": 10, "num_training_steps": 100}, {"K": 110}),
    Config("w5-T95-c3", {"num_warmup_steps": 5, "num_training_steps": 95, "num_cycles": 3}, {"K": 100}),
    Config("w0-T41-c2.5", {"num_warmup_steps": 0, "num_training_steps": 41, "num_cycles": 2.5}, {"K": 50}),
])

hf_case("polynomial_decay_schedule_with_warmup", [
    Config("defaults", {"num_warmup_steps": 10, "num_training_steps": 100}, {"K": 110}),
    Config("power2-end", {"num_warmup_steps": 4, "num_training_steps": 50, "lr_end": 1e-5, "power": 2.0},
           {"K": 60}),
    Config("power0.5-w0", {"num_warmup_steps": 0, "num_training_steps": 33, "lr_end": 1e-4, "power": 0.5},
           {"K": 40}),
    Config("w12-T5", {"num_warmup_steps": 12, "num_training_steps": 5, "lr_end": 1e-6}, {"K": 16}),
])

hf_case("constant_schedule_with_warmup", [
    Config("w10", {"num_warmup_steps": 10}, {"K": 20}),
    Config("w0", {"num_warmup_steps": 0}, {"K": 5}),
    Config("w37", {"num_warmup_steps": 37}, {"K": 45}),
])

hf_case("inverse_sqrt_schedule", [
    Config("w10", {"num_warmup_steps": 10}, {"K": 150}),
    Config("w0-default-timescale", {"num_warmup_steps": 0}, {"K": 50}),
    Config("w4-timescale13", {"num_warmup_steps": 4, "timescale": 13}, {"K": 80}),
    Config("w20-timescale3", {"num_warmup_steps": 20, "timescale": 3}, {"K": 60}),
])

hf_case("wsd_schedule", [
    Config("training-steps", {"num_warmup_steps": 10, "num_decay_steps": 20, "num_training_steps": 100}, {"K": 110}),
    Config("cosine-1sqrt-ratio", {"num_warmup_steps": 6, "num_decay_steps": 9, "num_stable_steps": 5,
                                  "warmup_type": "cosine", "decay_type": "1-sqrt", "min_lr_ratio": 0.1},
           {"K": 30}),
    Config("1sqrt-linear-s0", {"num_warmup_steps": 5, "num_decay_steps": 7, "num_stable_steps": 0,
                               "warmup_type": "1-sqrt", "decay_type": "linear", "min_lr_ratio": 0.05}, {"K": 20}),
    Config("cycles0.8-overlap", {"num_warmup_steps": 5, "num_decay_steps": 9, "num_training_steps": 10,
                                 "num_cycles": 0.8}, {"K": 20}),
    Config("both-given", {"num_warmup_steps": 3, "num_decay_steps": 4, "num_training_steps": 50,
                          "num_stable_steps": 2}, {"K": 15}),
])

hf_case("cosine_with_min_lr_schedule_with_warmup", [
    Config("min-lr-rate", {"num_warmup_steps": 10, "num_training_steps": 100, "min_lr_rate": 0.1}, {"K": 150}),
    Config("min-lr", {"num_warmup_steps": 3, "num_training_steps": 47, "min_lr": 1e-5}, {"K": 60}),
    Config("cycles1.2-w0", {"num_warmup_steps": 0, "num_training_steps": 30, "num_cycles": 1.2,
                            "min_lr_rate": 0.3}, {"K": 40}),
])


# --- torchvision's recipe: SequentialLR(LinearLR, CosineAnnealingLR) -----------------------------


def _recipe_ours(lr, start_factor, warmup, total, eta_min):
  return F.sequential_lr([F.linear_lr(lr, start_factor, 1.0, total_iters=warmup),
                          F.cosine_annealing_lr(lr, T_max=total - warmup, eta_min=eta_min)], [warmup])


def _recipe_torch(opt, lr, start_factor, warmup, total, eta_min):
  del lr
  return S.SequentialLR(opt, [S.LinearLR(opt, start_factor, 1.0, total_iters=warmup),
                              S.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=eta_min)], [warmup])


schedule_case(
    "linear_warmup_then_cosine_recipe", _recipe_ours, _recipe_torch,
    [Config("torchvision-defaults", {"start_factor": 0.01, "warmup": 5, "total": 90, "eta_min": 0.0}, {"K": 100}),
     Config("warmup1-eta", {"start_factor": 0.1, "warmup": 1, "total": 30, "eta_min": 1e-4}, {"K": 45}),
     Config("warmup20", {"start_factor": 0.001, "warmup": 20, "total": 120, "eta_min": 1e-5}, {"K": 130})],
    draw=_lr)
