"""What a schedule costs inside a jitted optimizer step: Adam with a constant lr vs the same step
with ``one_cycle_lr`` (+ ``one_cycle_momentum`` as beta1), ``warmup_cosine``,
``cosine_annealing_warm_restarts`` and the table-backed ``cosine_annealing_lr``, timed in the same
run.

Each timing is one jitted call that runs ``INNER`` Adam steps in a ``lax.fori_loop`` (so Python
dispatch does not hide the step), reported per step; the variants are timed one call of each in
turn (so load changes on a shared machine hit all alike) and each reports its median.
``losslab_ms``: the step with the schedule; ``constant_ms``: the same step with a float lr;
``delta_ms``: the difference. The first schedule row, a traced constant, is the cost of any lr that
is a function of the count; the others add their own scalar arithmetic on top (a few cosines).
``optax_ms``: ``optax.adam`` with optax's nearest schedule (``constant_schedule``,
``cosine_onecycle_schedule``, ``warmup_cosine_decay_schedule``, ``sgdr_schedule``,
``cosine_decay_schedule``). ``torch_ms``: torch's ``optimizer.step()`` followed by
``scheduler.step()`` (eager, float32), with ``torch_sched_ms`` the ``scheduler.step()`` alone.
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np

from parity._bench import jax_sync, time_fn

INNER = 20
TOTAL = 10_000


def _params(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
  width = max(int(np.sqrt(n / 2)), 4)
  return {"w1": rng.standard_normal((width, width)).astype(np.float32),
          "w2": rng.standard_normal((width, width)).astype(np.float32),
          "b": rng.standard_normal(width).astype(np.float32)}


def _jax_runner(tx, params):
  import jax
  import jax.numpy as jnp
  import optax

  grads = jax.tree.map(lambda p: jnp.asarray(p) * 1e-3, params)

  @jax.jit
  def run(params, state):
    def body(_, carry):
      p, s = carry
      updates, s = tx.update(grads, s, p)
      return optax.apply_updates(p, updates), s
    return jax.lax.fori_loop(0, INNER, body, (params, state))

  params = jax.tree.map(jnp.asarray, params)
  state = tx.init(params)
  jax_sync(run(params, state))  # compile
  return lambda: run(params, state)


def _interleaved(runners: dict, repeats: int) -> dict[str, float]:
  """Median ms per step of each runner, timed one call of each in turn so that load changes on the
  machine hit every variant alike."""
  times: dict[str, list[float]] = {k: [] for k in runners}
  for _ in range(repeats):
    for key, fn in runners.items():
      t0 = time.perf_counter()
      jax_sync(fn())
      times[key].append((time.perf_counter() - t0) * 1e3 / INNER)
  return {k: statistics.median(v) for k, v in times.items()}


def _torch_times(params, make_sched, repeats):
  import torch

  ps = [torch.tensor(v, requires_grad=True) for v in params.values()]
  for p in ps:
    p.grad = p.detach() * 1e-3
  opt = torch.optim.Adam(ps, lr=1e-3)
  sched = make_sched(opt) if make_sched is not None else None

  def step():
    for _ in range(INNER):
      opt.step()
      if sched is not None:
        sched.step()

  def sched_only():
    for _ in range(INNER):
      sched.step()

  both = time_fn(step, repeats=repeats) / INNER
  alone = time_fn(sched_only, repeats=repeats) / INNER if sched is not None else None
  return both, alone


def run(quick: bool = False) -> list[dict]:
  import jax.numpy as jnp
  import optax
  from torch.optim import lr_scheduler as S

  import losslab_jax as ll

  F = ll.schedules
  rng = np.random.default_rng(0)
  repeats = 10 if quick else 60
  sizes = [10_000] if quick else [10_000, 1_000_000]
  lr = 1e-3

  variants = {
      "traced constant (lambda k: lr)": (
          ll.optim.adam(lr=lambda k: jnp.full((), lr)),
          optax.adam(optax.constant_schedule(lr)),
          lambda opt: S.LambdaLR(opt, lambda k: 1.0)),
      "one_cycle_lr + beta1": (
          ll.optim.adam(lr=F.one_cycle_lr(lr, TOTAL), betas=(F.one_cycle_momentum(TOTAL), 0.999)),
          optax.adam(optax.cosine_onecycle_schedule(TOTAL, lr), b1=0.9),
          lambda opt: S.OneCycleLR(opt, lr, total_steps=10 * TOTAL)),
      "warmup_cosine": (
          ll.optim.adam(lr=F.warmup_cosine(lr, TOTAL // 10, TOTAL)),
          optax.adam(optax.warmup_cosine_decay_schedule(0.0, lr, TOTAL // 10, TOTAL)),
          lambda opt: S.LambdaLR(opt, lambda k: k / 1000 if k < 1000 else 0.5 * (1 + math.cos(
              math.pi * min(1.0, (k - 1000) / 9000))))),
      "cosine_annealing_warm_restarts": (
          ll.optim.adam(lr=F.cosine_annealing_warm_restarts(lr, 100, 2)),
          optax.adam(optax.sgdr_schedule([{"init_value": lr, "peak_value": lr, "warmup_steps": 0,
                                           "decay_steps": 100 * 2 ** i, "end_value": 0.0} for i in range(6)])),
          lambda opt: S.CosineAnnealingWarmRestarts(opt, 100, 2)),
      "cosine_annealing_lr (table)": (
          ll.optim.adam(lr=F.cosine_annealing_lr(lr, TOTAL)),
          optax.adam(optax.cosine_decay_schedule(lr, TOTAL)),
          lambda opt: S.CosineAnnealingLR(opt, TOTAL)),
  }

  rows = []
  for n in sizes:
    params = _params(n, rng)
    size = f"{sum(v.size for v in params.values()):,} params"
    runners = {"constant": _jax_runner(ll.optim.adam(lr=lr), params),
               "optax-constant": _jax_runner(optax.adam(lr), params)}
    for name, (ours, theirs, _) in variants.items():
      runners[name] = _jax_runner(ours, params)
      runners["optax-" + name] = _jax_runner(theirs, params)
    best = _interleaved(runners, repeats)
    torch_const, _ = _torch_times(params, None, repeats)
    rows.append({"bench": "adam step, constant lr", "size": size, "losslab_ms": best["constant"],
                 "optax_ms": best["optax-constant"], "torch_ms": torch_const, "constant_ms": best["constant"],
                 "delta_ms": "0", "torch_sched_ms": "-"})
    for name, (_, _, make_sched) in variants.items():
      t_both, t_sched = _torch_times(params, make_sched, repeats)
      rows.append({"bench": f"adam step + {name}", "size": size, "losslab_ms": best[name],
                   "optax_ms": best["optax-" + name], "torch_ms": t_both, "constant_ms": best["constant"],
                   "delta_ms": f"{best[name] - best['constant']:+.4f}", "torch_sched_ms": f"{t_sched:.4f}"})
  return rows
