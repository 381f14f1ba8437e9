"""What ``ll.monitor.Monitor`` costs on a jitted training step of about 5 ms (goal: <= 2%).

The step is a jitted chain of matmuls sized at start-up to take about ``TARGET_MS`` on this
machine. Each repeat runs ``STEPS`` steps plainly (dispatch every step, one block at the end) and
the same ``STEPS`` steps with the monitor (``mon.step(state, loss=..., lr=..., grad_norm=...)``
after every step, the monitor's own syncs, ``close()`` at the end), the two in turn so load changes
on a shared machine hit both alike. Rows:

``plain_ms``, ``losslab_ms``: median ms per step of the plain and the monitored loop.
``overhead_%``: median over repeats of (monitored / plain - 1), in percent (paired, so it is the
  least noisy end-to-end figure; on a busy machine it still moves by a percent or two).
``in_step_us``: the CPU time (``time.thread_time``: the calling thread's own, so time the thread
  spends descheduled on a busy machine does not count) spent inside ``Monitor.step`` and ``close``
  per step, less that spent waiting for the device (which the plain loop spends at its end): the
  monitor's host cost, measured directly; ``in_step_%``: that as a share of the plain step.
The last row times ``Monitor.step`` alone on outputs computed beforehand (no device work beside it):
its host cost without contention (``in_step_%`` relative to the first row's plain step).
``syncs``: how many times the monitored run waited for the device; ``load_avg``: the machine's
  1-minute load average at the end (the end-to-end figures mean little when it exceeds the cores).
"""

from __future__ import annotations

import io
import os
import statistics
import time

TARGET_MS = 5.0


def _step_fn(n: int):
  import jax
  import jax.numpy as jnp

  @jax.jit
  def step(x, w):
    h = x
    for _ in range(4):
      h = jnp.tanh(h @ w)
    x = 0.5 * x + 0.5 * h
    return x, jnp.mean(h * h), jnp.float32(1e-3), jnp.sqrt(jnp.sum(h * h))

  key = jax.random.PRNGKey(0)
  x = jax.random.normal(key, (n, n), jnp.float32)
  w = jax.random.normal(jax.random.fold_in(key, 1), (n, n), jnp.float32) / n**0.5
  jax.block_until_ready(step(x, w))
  return step, x, w


def _calibrate() -> tuple[int, float]:
  """The matrix size whose step takes about TARGET_MS, and that time."""
  import jax

  n, ms = 128, 0.0
  while n <= 4096:
    step, x, w = _step_fn(n)
    times = []
    for _ in range(5):
      t0 = time.perf_counter()
      jax.block_until_ready(step(x, w))
      times.append((time.perf_counter() - t0) * 1e3)
    ms = statistics.median(times)
    if ms >= TARGET_MS * 0.8:
      return n, ms
    n = int(n * min(1.25, max(1.05, (TARGET_MS / max(ms, 1e-3)) ** (1 / 3))))
  return n, ms


def run(quick: bool = False) -> list[dict]:
  n, _ = _calibrate()
  step, x0, w = _step_fn(n)
  steps = 100 if quick else 200
  repeats = 3 if quick else 7
  rows = []
  for sync_every, output in ((50, "none"), (10, "none"), (50, "plain")):
    plain, monitored, ratios, in_step, syncs = [], [], [], [], 0
    for _ in range(repeats):
      t_plain = _plain_loop(step, x0, w, steps)
      t_mon, own, syncs = _monitored_loop(step, x0, w, steps, sync_every, output)
      plain.append(t_plain * 1e3 / steps)
      monitored.append(t_mon * 1e3 / steps)
      ratios.append(t_mon / t_plain - 1)
      in_step.append(own * 1e6 / steps)
    plain_ms = statistics.median(plain)
    rows.append({
        "bench": f"Monitor(sync_every={sync_every}, output={output!r})", "size": f"{n}x{n} matmuls, {steps} steps",
        "losslab_ms": statistics.median(monitored), "optax_ms": None, "torch_ms": None,
        "plain_ms": round(plain_ms, 3), "overhead_%": round(100 * statistics.median(ratios), 2),
        "in_step_us": round(statistics.median(in_step), 1),
        "in_step_%": round(100 * statistics.median(in_step) / 1e3 / plain_ms, 2), "syncs": syncs,
        "load_avg": _load_avg(),
    })
  rows.append(_alone_row(step, x0, w, steps, repeats, rows[0]["plain_ms"]))
  return rows


def _load_avg() -> float | None:
  return round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None


def _plain_loop(step, x0, w, steps: int) -> float:
  """Seconds for ``steps`` plain steps (dispatch every step, one block at the end)."""
  import jax

  x = x0
  t0 = time.perf_counter()
  for _ in range(steps):
    x, loss, lr, gnorm = step(x, w)
  jax.block_until_ready(x)
  return time.perf_counter() - t0


def _monitored_loop(step, x0, w, steps: int, sync_every: int, output: str) -> tuple[float, float, int]:
  """(seconds, the monitor's own CPU seconds less its waits for the device, syncs) for ``steps`` monitored steps."""
  import jax

  import losslab_jax as ll

  waited = [0.0]

  def block(tree, waited=waited):
    t = time.thread_time()
    jax.block_until_ready(tree)
    waited[0] += time.thread_time() - t

  mon = ll.monitor.Monitor(steps, sync_every=sync_every, output=output, stream=io.StringIO(), refresh_s=0.0,
                           block=block)
  x = x0
  inside = 0.0
  t0 = time.perf_counter()
  for _ in range(steps):
    x, loss, lr, gnorm = step(x, w)
    t1 = time.thread_time()
    mon.step(x, loss=loss, lr=lr, grad_norm=gnorm)
    inside += time.thread_time() - t1
  t1 = time.thread_time()
  mon.close()
  inside += time.thread_time() - t1
  t_mon = time.perf_counter() - t0
  return t_mon, inside - waited[0], mon.syncs  # the waits for the device are not its cost


def _alone_row(step, x0, w, steps: int, repeats: int, plain_ms: float) -> dict:
  """The monitor's own host cost, with no device work running beside it: every step's outputs are
  computed first, then fed to Monitor.step (CPU time of this thread, median over repeats)."""
  import jax

  import losslab_jax as ll

  outs, x = [], x0
  for _ in range(steps):
    x, loss, lr, gnorm = step(x, w)
    outs.append((x, loss, lr, gnorm))
  jax.block_until_ready(outs)
  alone = []
  syncs = 0
  for _ in range(repeats):
    fresh = [tuple(a + 0 for a in o) for o in outs]  # new arrays: no host copy cached from a previous repeat
    jax.block_until_ready(fresh)
    mon = ll.monitor.Monitor(steps, sync_every=50, output="none")
    t0 = time.thread_time()
    for x, loss, lr, gnorm in fresh:
      mon.step(x, loss=loss, lr=lr, grad_norm=gnorm)
    mon.close()
    alone.append((time.thread_time() - t0) * 1e6 / steps)
    syncs = mon.syncs
  return {
      "bench": "Monitor(sync_every=50) alone (outputs precomputed)", "size": f"{steps} steps",
      "losslab_ms": statistics.median(alone) / 1e3, "optax_ms": None, "torch_ms": None, "plain_ms": None,
      "overhead_%": None, "in_step_us": round(statistics.median(alone), 1),
      "in_step_%": round(100 * statistics.median(alone) / 1e3 / plain_ms, 2), "syncs": syncs,
      "load_avg": _load_avg(),
  }
